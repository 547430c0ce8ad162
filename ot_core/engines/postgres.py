"""PostgreSQL: the server warehouse tested in CI, and everything it does differently.

The job lock is a session advisory lock; maintenance vacuums by the dead-tuple ratio; the
checksum spelling is the ANSI/PostgreSQL default of ``ot_core.quality.checksum``.

Bulk loads stream text COPY FROM STDIN from the Arrow batch (CSV: NULL unquoted and empty, every
string quoted, so an empty string stays an empty string). Staging temp tables are ANALYZEd so the merge's key lookups use the
mart's primary-key index: cost follows the batch, not the mart.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.engines.base import Backend, driver
from ot_core.engines.strategies import Decision, JobLock, LockSite, Maintainer, Plan

if TYPE_CHECKING:
    import pyarrow as pa

# Staged batches up to this size are merged by key-index lookups (a backfill is not).
KEY_LOOKUP_MAX_ROWS = 200_000

log = logging.getLogger("ot.jobs")


class PostgresMaintainer(Maintainer):
    def plan(self, conn, last_vacuum):
        rows = conn.execute(sa.text(
            "SELECT schemaname, relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables "
            "WHERE schemaname IN (:mart, :raw, :ctl) ORDER BY schemaname, relname"),
            {"mart": self.site.mart_schema, "raw": self.site.raw_schema,
             "ctl": self.site.control_schema}).fetchall()
        decisions = []
        for schema, rel, live, dead in rows:
            live, dead = int(live), int(dead)
            ratio = dead / (live + dead) if live + dead else 0.0
            over = ratio > self.limits.dead_ratio and dead >= self.limits.min_dead_tuples
            action = f"VACUUM (ANALYZE) {self.backend.qualified(schema, rel)}" if over else "skip"
            decisions.append(Decision(
                f"{schema}.{rel}", action, "pg_stat_user_tables",
                f"dead {dead} of {live + dead} ({ratio:.1%}); vacuum above {self.limits.dead_ratio:.0%} "
                f"and {self.limits.min_dead_tuples} dead",
                {"live_tuples": live, "dead_tuples": dead, "dead_ratio": round(ratio, 4)}))
        return Plan("measured: pg_stat_user_tables dead-tuple ratio per table", decisions)


class AdvisoryJobLock(JobLock):
    """A session-level advisory lock on a connection held while the job runs; the server
    drops it when the session ends. The holder is named through ``application_name``."""

    def __init__(self, site: LockSite, backend: Backend, job: str, timeout_seconds: int):
        super().__init__(site, backend, job, timeout_seconds)
        self.key = zlib.crc32(f"ot_job:{job}".encode())
        self._conn: sa.Connection | None = None

    def acquire(self) -> bool:
        conn = self.site.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        if not got:
            conn.close()
            return False
        self._conn = conn
        self.set_holder(self.this_process())
        return True

    def set_holder(self, description: str) -> None:
        if self._conn is not None:
            self._conn.execute(sa.text("SELECT set_config('application_name', :n, false)"),
                               {"n": f"ot {self.job}: {description}"[:63]})

    def holder(self) -> str:
        with self.site.engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT a.application_name, a.pid, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.objid = :k AND l.classid = 0"), {"k": self.key}).first()
        if row is None:
            return "another session (it has just finished)"
        return f"{row[0] or 'a session'} (server pid {row[1]})"

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            except sa.exc.DBAPIError:
                # the session died (a server restart): the server dropped the lock with it,
                # and the work done under it is committed or rolled back already
                log.warning("job %s: the lock's session was gone at release", self.job)
            finally:
                self._conn.close()
                self._conn = None


class PostgresBackend(Backend):
    name = "postgresql"
    roles = frozenset({"warehouse"})
    extra = "postgres"
    holds_nul_in_text = False
    lock_class = AdvisoryJobLock
    maintainer_class = PostgresMaintainer

    def load_arrow(self, conn: Connection, schema: str | None, table: str,
                   data: pa.Table) -> int:
        """Text COPY streamed from the Arrow table: Arrow's CSV writer quotes every string
        and leaves NULL unquoted and empty, which is COPY's CSV default (so an empty string
        stays an empty string); DECIMALs are written exactly, as text."""
        if data.num_rows == 0:
            return 0
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False,
                                                      quoting_style="needed"))
        buf.seek(0)
        cols = ", ".join(self.quote(c) for c in data.column_names)
        sql = f"COPY {self.qualified(schema, table)} ({cols}) FROM STDIN WITH (FORMAT csv)"
        with driver(conn).cursor() as cur:
            cur.copy_expert(sql, buf)
        return data.num_rows

    @contextmanager
    def filling(self, conn: Connection, target: str, rows: int) -> Iterator[None]:
        """A backfill into an empty table: drop its indexes (primary key included), insert,
        then build each once by sorting, instead of growing three B-trees row by row (about
        twice as fast: bench/README.md). DDL is transactional
        here, so a failure anywhere rolls the indexes back with the rows. The drop holds an
        exclusive lock on the (empty) table until commit: readers of it wait for the backfill.
        A user that does not own the table (one granted only reads and writes) may not drop
        its indexes: it inserts with them in place. Indexes something depends on (a foreign
        key pointing at them, the replica identity, CLUSTER) and constraints other than the
        primary key are left in place.

        Any batch this large, and the first rows of a table never analyzed
        (``pg_class.reltuples < 0``), are followed by ANALYZE of the table: a mart bulk-loaded has
        no statistics until autovacuum gets to it (never, where it is off), and without
        them the lifecycle's range probe on the archive column is costed at a third of
        the table and read by a sequential scan in every cycle (bench/README.md, scale)."""
        if rows <= KEY_LOOKUP_MAX_ROWS:
            yield
            if rows and conn.execute(sa.text(
                    "SELECT reltuples < 0 FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                    {"t": target}).scalar():
                self._analyze(conn, target)  # a first load of a mart never analyzed
            return
        if not conn.execute(sa.text(
                f"SELECT pg_has_role(c.relowner, 'USAGE') AND NOT EXISTS (SELECT 1 FROM {target}) "
                "FROM pg_class c WHERE c.oid = CAST(:t AS regclass)"), {"t": target}).scalar():
            yield
            self._analyze(conn, target)
            return
        indexes = conn.execute(sa.text(
            "SELECT n.nspname, ic.relname, pg_get_indexdef(i.indexrelid), c.conname, "
            "pg_get_constraintdef(c.oid) "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = ic.relnamespace "
            "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
            "AND c.contype <> 'f' "
            "WHERE i.indrelid = CAST(:t AS regclass) AND (c.oid IS NULL OR c.contype = 'p') "
            "AND NOT i.indisreplident AND NOT i.indisclustered AND NOT EXISTS ("
            "SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid) "
            "ORDER BY c.oid IS NULL, ic.relname"), {"t": target}).fetchall()
        for schema, index, _, constraint, _ in indexes:
            if constraint:
                conn.exec_driver_sql(f"ALTER TABLE {target} DROP CONSTRAINT {self.quote(constraint)}")
            else:
                conn.exec_driver_sql(f"DROP INDEX {self.qualified(schema, index)}")
        yield
        for _, _, index_ddl, constraint, constraint_ddl in indexes:  # the primary key first
            if constraint:
                conn.exec_driver_sql(
                    f"ALTER TABLE {target} ADD CONSTRAINT {self.quote(constraint)} {constraint_ddl}")
            else:
                conn.exec_driver_sql(index_ddl)
        self._analyze(conn, target)

    def after_bulk_change(self, conn: Connection, target: str, rows: int) -> None:
        # A raw table that took a backfill's batch, or lost it to the trim, has statistics
        # that say nothing of what is left: the trim's `_batch_id < :first_kept_batch` was
        # costed at a third of the table and read all of it (4 GB at 1/10 of production)
        # by sequential scan in every cycle (bench/README.md, scale).
        if rows > KEY_LOOKUP_MAX_ROWS:
            self._analyze(conn, target)

    @staticmethod
    def _analyze(conn: Connection, target: str) -> None:
        # a sample of the table (statistics target x 300 rows), whatever its size; a role
        # that does not own the table gets a warning and no statistics, not an error
        conn.exec_driver_sql(f"ANALYZE {target}")

    def raw_indexes(self, schema: str, table: str) -> list[str]:
        name = self.quote(f"ix_{table}_batch")
        return [f"CREATE INDEX IF NOT EXISTS {name} ON {self.qualified(schema, table)} (_batch_id)"]

    def mart_indexes(self, schema: str, table: str, archive_column: str) -> list[str]:
        target = self.qualified(schema, table)
        return [
            f"CREATE INDEX IF NOT EXISTS {self.quote(f'ix_{table}_archive')} ON {target} "
            f"({self.quote(archive_column)})",
            f"CREATE INDEX IF NOT EXISTS {self.quote(f'ix_{table}_batch')} ON {target} (_batch_id)",
        ]

    def serialize_ids(self, conn: Connection, schema: str | None, table: str) -> None:
        # blocks other writers (not readers) of the table until this transaction ends
        conn.exec_driver_sql(f"LOCK TABLE {self.qualified(schema, table)} IN SHARE ROW EXCLUSIVE MODE")

    def after_stage(self, conn: Connection, temp_table: str, rows: int) -> None:
        conn.exec_driver_sql(f"ANALYZE {self.quote(temp_table)}")
        self.plan_for_batch(conn, rows)

    def plan_for_batch(self, conn: Connection, rows: int) -> None:
        if 0 <= rows <= KEY_LOOKUP_MAX_ROWS:
            # A steady-state batch touches a small share of the mart, but with 10K of 1M keys
            # the planner still prefers hashing the whole mart: the cost would follow the
            # mart. For the rest of this transaction (one merge or one landing) probe the
            # mart's key index instead.
            conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
            conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
            conn.exec_driver_sql("SET LOCAL jit = off")

    def plan_lifecycle(self, conn: Connection) -> None:
        # Index-range estimates on a mart whose old rows are trimmed every cycle count the
        # dead entries, so a statement that reads a few thousand rows is costed like one that
        # reads 100K and gets JIT-compiled: the compiling took longer than the running.
        # Join methods stay the planner's: history tables filled this cycle have no
        # statistics yet, and with hash joins off it nested-looped over them row by row.
        conn.exec_driver_sql("SET LOCAL jit = off")

    @classmethod
    def engine_kwargs(cls) -> dict:
        return {"pool_pre_ping": True}

    routine_kind = "PROCEDURE"
    has_roles = True
    # a SECURITY DEFINER routine runs with a fixed search path: nothing the caller creates
    # (a temp table of the same name) can stand in for what it uses
    routine_options = " SET search_path = pg_catalog, pg_temp"

    def resolver_body(self, table: str) -> str:
        return _RESOLVER_BODY.format(table=table)

    @classmethod
    def read_only(cls, url):
        # every transaction of the session is READ ONLY: no statement can write, whatever
        # the role may do
        return url, {"connect_args": {"options": "-c default_transaction_read_only=on"}}


# the resolution of one exception (``Backend.resolver_statements``): only the resolution
# columns change, resolved_by is the session's login, resolved_at the server's clock (UTC)
_RESOLVER_BODY = """DECLARE
  n INTEGER;
BEGIN
  IF p_note IS NULL OR btrim(p_note) = '' THEN
    RAISE EXCEPTION 'a resolution note is required';
  END IF;
  UPDATE {table} SET resolved_at = date_trunc('second', now() AT TIME ZONE 'UTC'),
    resolved_by = session_user,
    notes = left(CASE WHEN coalesce(notes, '') = '' THEN 'resolved: ' || btrim(p_note)
                 ELSE notes || ' | resolved: ' || btrim(p_note) END, 1000)
  WHERE exception_id = p_id AND resolved_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RAISE EXCEPTION 'exception % is not open (unknown or already resolved)', p_id;
  END IF;
END"""

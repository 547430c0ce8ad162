"""Amazon Redshift: production scale. SQL is compiled and parsed for it; no cluster here.

What differs from PostgreSQL: DISTKEY/SORTKEY table options
(docs/contracts.md#redshift-table-options), the
catalog (``pg_tables``), and bulk loads (each batch staged as Parquet in S3 and loaded by
one COPY, ``redshift_s3.py``; the fallback for small batches, or where no S3 location is
configured, is a bound multi-row INSERT). Never build correlated DELETEs with SQLAlchemy
expressions for Redshift: sqlalchemy-redshift drops the correlation, so the statement would
delete every row; every such statement comes from the templates in ``sql/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.engines.base import Backend, driver
from ot_core.engines.redshift_s3 import S3CopyLoad
from ot_core.engines.strategies import (
    ChecksumDialect,
    Decision,
    JobLock,
    LockSite,
    Maintainer,
    Plan,
)
from ot_core.errors import PermissionMissing
from ot_core.timeutil import utcnow

# Distribution and sort keys per table and role. Merges delete by key only
# (docs/legacy-defects.md#12-range-predicate-defeating-the-distribution-key), so
# DISTKEY(order_id) co-locates a batch with the rows it replaces.
SORTKEYS = {
    "ecs_order_info": ("partner_id", "add_time"),
    "uni_tracking_info": ("update_time",),
    "uni_tracking_spath": ("pathTime",),
}


UNSORTED_SQL = 'SELECT "table", unsorted, tbl_rows FROM {view} WHERE "schema" = :schema'


class RedshiftMaintainer(Maintainer):
    """VACUUM SORT ONLY where ``svv_table_info.unsorted`` is above the limit. That view needs
    a grant; without it the unsortedness is *estimated* from the pipeline's own counts — rows
    merged into the mart since its last vacuum over the mart's rows (an upper bound: a merge
    appends its rows unsorted) — and every decision says it was estimated and why."""

    view = "svv_table_info"

    def statement(self, mart: str) -> str:
        return (f"VACUUM SORT ONLY {self.backend.qualified(self.site.mart_schema, mart)} "
                "TO 100 PERCENT")

    def plan(self, conn: Connection, last_vacuum: dict[str, datetime]) -> Plan:
        try:
            measured = self.read_unsorted(conn)
            method = f"measured: {self.view}.unsorted (the warehouse's own figure)"
            source = self.view
        except PermissionMissing as e:
            measured = self.estimate_unsorted(conn, last_vacuum)
            method = (f"estimated: {e} — so unsorted % is estimated as rows merged since the "
                      "last vacuum (ot_batches.rows_merged) over the mart's rows")
            source = "estimate"
        decisions = []
        for mart in self.site.marts:
            fig = measured.get(mart, {"unsorted_pct": 0.0, "rows": 0})
            over = fig["unsorted_pct"] > self.limits.unsorted_pct
            decisions.append(Decision(
                mart, self.statement(mart) if over else "skip", source,
                f"unsorted {fig['unsorted_pct']:.1f}% {'>' if over else '<='} "
                f"{self.limits.unsorted_pct}%", fig))
        return Plan(method, decisions)

    def read_unsorted(self, conn: Connection) -> dict[str, dict]:
        """``unsorted`` % per mart; PermissionMissing when the view is not granted."""
        try:
            with conn.begin_nested() if conn.in_transaction() else conn.begin():
                rows = conn.execute(sa.text(UNSORTED_SQL.format(view=self.view)),
                                    {"schema": self.site.mart_schema}).fetchall()
        except sa.exc.ProgrammingError as e:
            if self.backend.is_permission_denied(e):
                raise PermissionMissing(
                    f"no SELECT on {self.view}: GRANT it (or sys:monitor) to the warehouse user "
                    "to measure unsorted rows") from None
            raise
        return {r[0]: {"unsorted_pct": float(r[1] or 0), "rows": int(r[2] or 0)} for r in rows}

    def estimate_unsorted(self, conn: Connection,
                          last_vacuum: dict[str, datetime]) -> dict[str, dict]:
        out = {}
        for mart in self.site.marts:
            merged = self.site.rows_merged_since(conn, mart, last_vacuum.get(mart))
            total = int(conn.execute(sa.text(
                f"SELECT COUNT(*) FROM {self.backend.qualified(self.site.mart_schema, mart)}"
            )).scalar_one())
            pct = 100.0 * min(merged, total) / total if total else 0.0
            out[mart] = {"unsorted_pct": round(pct, 2), "rows": total,
                         "rows_merged_since_vacuum": merged,
                         "last_vacuum": str(last_vacuum.get(mart, "never"))}
        return out


class RowJobLock(JobLock):
    """A lock row that expires after the job's timeout (plus a margin) if never released."""

    MARGIN = timedelta(minutes=5)

    def __init__(self, site: LockSite, backend: Backend, job: str, timeout_seconds: int):
        super().__init__(site, backend, job, timeout_seconds)
        self.token = uuid.uuid4().hex
        self.table = site.locks_table
        self._held = False

    def statements(self) -> dict[str, str]:
        locks = self.backend.qualified(self.table.schema, self.table.name)
        return {k: self.site.render(f"jobs/lock_{k}.sql", locks=locks)
                for k in ("expire", "take", "release")}

    def acquire(self) -> bool:
        sql = self.statements()
        now = utcnow()
        params = {"job": self.job, "token": self.token, "now": _naive(now),
                  "holder": self.this_process(),
                  "expires_at": _naive(now + timedelta(seconds=self.timeout_seconds)
                                       + self.MARGIN)}
        with self.site.engine.connect() as conn, conn.begin():
            self.site.ensure(conn)  # the locks table is a control table
            conn.execute(sa.text(sql["expire"]), {"job": params["job"], "now": params["now"]})
            conn.execute(sa.text(sql["take"]), params)
            owner = conn.execute(sa.select(self.table.c.token)
                                 .where(self.table.c.job == self.job)).scalar()
        self._held = owner == self.token
        return self._held

    def set_holder(self, description: str) -> None:
        t = self.table
        with self.site.engine.connect() as conn, conn.begin():
            conn.execute(sa.update(t).where(t.c.job == self.job, t.c.token == self.token)
                         .values(holder=description))

    def holder(self) -> str:
        t = self.table
        with self.site.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.holder, t.c.expires_at)
                               .where(t.c.job == self.job)).first()
        return "another run" if row is None else f"{row[0]}; lock expires {row[1]} UTC"

    def release(self) -> None:
        if self._held:
            with self.site.engine.connect() as conn, conn.begin():
                conn.execute(sa.text(self.statements()["release"]),
                             {"job": self.job, "token": self.token})
            self._held = False


def _naive(dt: datetime) -> datetime:
    """TIMESTAMP columns hold UTC without a zone."""
    return dt.astimezone(UTC).replace(tzinfo=None)


class RedshiftChecksum(ChecksumDialect):
    def hash28(self, text: str) -> str:
        return f"STRTOL(SUBSTRING(MD5({text}), 1, 7), 16)"


class RedshiftBackend(Backend):
    name = "redshift"
    roles = frozenset({"warehouse"})
    extra = "redshift"
    holds_nul_in_text = False
    checksum_class = RedshiftChecksum
    lock_class = RowJobLock
    maintainer_class = RedshiftMaintainer
    batch_load_class = S3CopyLoad
    # rows per multi-row INSERT of the fallback (a statement stays far below Redshift's 16 MB)
    insert_page_rows = 500

    def table_kwargs(self, role: str, contract: Any) -> dict[str, Any]:
        if role in ("mart", "hist"):
            return {
                "redshift_diststyle": "KEY",
                "redshift_distkey": "order_id",
                "redshift_sortkey": SORTKEYS[contract.name],
            }
        if role == "raw":
            return {"redshift_diststyle": "KEY", "redshift_distkey": "order_id",
                    "redshift_sortkey": ("_batch_id", "_raw_id")}
        return {}

    def executemany(self, conn: Connection, schema: str | None, table: str,
                    columns: Sequence[str], rows: list[tuple]) -> int:
        """Multi-row INSERTs of ``insert_page_rows`` rows (psycopg2's ``execute_values``:
        values bound by the driver), not one statement per row: the fallback for batches
        too small for a COPY."""
        if not rows:
            return 0
        from psycopg2.extras import execute_values

        cols = ", ".join(self.quote(c) for c in columns)
        cur = driver(conn).cursor()
        try:
            execute_values(cur, f"INSERT INTO {self.qualified(schema, table)} ({cols}) VALUES %s",
                           rows, page_size=self.insert_page_rows)
        finally:
            cur.close()
        return len(rows)

    def serialize_ids(self, conn: Connection, schema: str | None, table: str) -> None:
        conn.exec_driver_sql(f"LOCK {self.qualified(schema, table)}")

    @classmethod
    def read_only(cls, url):
        # Redshift takes no start-up options: every transaction begins READ ONLY instead
        # (psycopg2 sends BEGIN READ ONLY)
        return url, {"execution_options": {"postgresql_readonly": True}}

    # Redshift functions cannot write: the narrow write path is a stored procedure
    routine_kind = "PROCEDURE"
    # roles cannot log in on Redshift: the pipeline is a user, the others roles granted to
    # users; there is no CONNECT privilege
    has_roles = True
    role_login_sql = "CREATE USER {name} PASSWORD DISABLE"
    role_group_sql = "CREATE ROLE {name}"
    role_grantee = "ROLE {name}"
    role_member_sql = "GRANT ROLE {role} TO {user}"
    role_creator = "FOR USER {name}"
    role_database_writer = "TEMPORARY"
    role_database_reader = None
    role_login_note = ("give it a password (ALTER USER {name} PASSWORD '…') or IAM "
                       "credentials")
    role_pipeline_extra = ('GRANT ROLE "sys:monitor" TO {name};  -- maintenance reads '
                           "svv_table_info (docs/redshift.md)",)

    def resolver_body(self, table: str) -> str:
        return _RESOLVER_BODY.format(table=table)

    def drop_not_null(self, qualified: str, column: str) -> str | None:
        return None  # Redshift cannot change a column's nullability in place

    def schemas_with_table(self, conn: Connection, table: str) -> list[str]:
        rows = conn.execute(sa.text(
            "SELECT schemaname FROM pg_tables WHERE tablename = :t ORDER BY schemaname"),
            {"t": table})
        return [r[0] for r in rows]

    def list_tables(self, conn: Connection, schema: str | None, prefix: str = "") -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
                "AND tablename LIKE :pattern ORDER BY tablename"
            ),
            {"schema": schema, "pattern": prefix + "%"},
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]


# the resolution of one exception (``Backend.resolver_statements``): plpgsql as Redshift's
# stored procedures take it (no SET clause; every name qualified)
_RESOLVER_BODY = """DECLARE
  n INTEGER;
BEGIN
  IF p_note IS NULL OR BTRIM(p_note) = '' THEN
    RAISE EXCEPTION 'a resolution note is required';
  END IF;
  UPDATE {table} SET resolved_at = DATE_TRUNC('second', GETDATE()),
    resolved_by = SESSION_USER,
    notes = LEFT(CASE WHEN COALESCE(notes, '') = '' THEN 'resolved: ' || BTRIM(p_note)
                 ELSE notes || ' | resolved: ' || BTRIM(p_note) END, 1000)
  WHERE exception_id = p_id AND resolved_at IS NULL;
  GET DIAGNOSTICS n := ROW_COUNT;
  IF n = 0 THEN
    RAISE EXCEPTION 'exception % is not open (unknown or already resolved)', p_id;
  END IF;
END"""

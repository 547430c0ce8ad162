"""DuckDB: the embedded warehouse, and everything it does differently.

Bulk loads hand an Arrow table to DuckDB, which scans it in place (a relation over it, then
INSERT ... SELECT), inside the caller's transaction. No declared primary keys (see ``Backend``); no SQLAlchemy
reflection (duckdb-engine's breaks on SQLAlchemy >= 2.0.55): the catalog is read with
``information_schema`` queries like every other warehouse. The job lock is an OS file lock
beside the file; maintenance is a CHECKPOINT; checksums use DuckDB's ``concat`` and ``//``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout
from sqlalchemy.dialects import registry
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from ot_core import errors
from ot_core.engines.base import Backend, driver
from ot_core.engines.strategies import (
    ChecksumDialect,
    Decision,
    JobLock,
    LockSite,
    Maintainer,
    Plan,
)

if TYPE_CHECKING:
    import pyarrow as pa

registry.register("duckdb.ot", "ot_core.engines.duckdb_dialect", "OTDuckDBDialect")
_names = itertools.count()
# DuckDB's buffer pool during a backfill (see ``DuckDBBackend.first_load``)
FIRST_LOAD_MEMORY_LIMIT = "256MB"
log = logging.getLogger("ot.cycle")

# DuckDB raises its own IOException for a file another process holds: worth a retry
errors.add_transient_check(lambda exc: type(exc).__name__ == "IOException"
                           and "lock" in str(exc).lower())
errors.add_advice("not a valid duckdb database file",
                  "the file is not a DuckDB database: restore it from a backup or point "
                  "OT_WAREHOUSE_URL at the right file")


class DuckDBMaintainer(Maintainer):
    def plan(self, conn, last_vacuum):
        row = conn.exec_driver_sql("PRAGMA database_size").mappings().first() or {}
        figs = {k: str(row.get(k)) for k in ("database_size", "wal_size", "free_blocks") if k in row}
        return Plan("DuckDB: CHECKPOINT folds the write-ahead log into the file (cheap, always)",
                    [Decision("(database)", "CHECKPOINT", "PRAGMA database_size",
                              "always: no per-table vacuum in DuckDB", figs)])

    def run(self, decision: Decision) -> None:
        # duckdb-engine has no AUTOCOMMIT level: run it on the driver connection directly
        with self.site.engine.connect() as conn:
            driver(conn).execute(decision.action)


class FileJobLock(JobLock):
    """An OS file lock beside the warehouse file: the OS drops it when the process dies; a
    sidecar JSON names the holder."""

    def __init__(self, site: LockSite, backend: Backend, job: str, timeout_seconds: int):
        super().__init__(site, backend, job, timeout_seconds)
        base = Path(str(site.url.database))
        self.path = Path(f"{base}.{job}.lock")
        self.info = Path(f"{self.path}.json")
        self._lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self.set_holder(self.this_process())
        return True

    def set_holder(self, description: str) -> None:
        self.info.write_text(json.dumps({"holder": description, "pid": os.getpid()}))

    def holder(self) -> str:
        try:
            return json.loads(self.info.read_text())["holder"]
        except (OSError, ValueError, KeyError):
            return f"lock file {self.path}"

    def release(self) -> None:
        if self._lock.is_locked:
            self.info.unlink(missing_ok=True)
            self._lock.release(force=True)


class DuckDBChecksum(ChecksumDialect):
    nul = "chr(0)"
    def concat(self, parts: Sequence[str]) -> str:
        # one allocation per row; a chain of || builds every intermediate string (4x slower)
        return "concat(" + ", ".join(parts) + ")"

    def hash28(self, text: str) -> str:
        return f"CAST(('0x' || SUBSTR(MD5({text}), 1, 7)) AS BIGINT)"

    def intdiv(self, a: str, b: str) -> str:
        return f"(({a}) // {b})"


class DuckDBBackend(Backend):
    name = "duckdb"
    roles = frozenset({"warehouse"})
    declares_primary_keys = False
    embedded_file = True
    single_writer = True
    extra = None
    checksum_class = DuckDBChecksum
    lock_class = FileJobLock
    maintainer_class = DuckDBMaintainer

    def database_user(self, conn: Connection) -> str:
        # DuckDB has no users: the file's permissions decide who may write, so the login of
        # the process that writes is who resolved
        import getpass

        try:
            return getpass.getuser()
        except (OSError, KeyError):
            return f"uid {os.getuid()}"

    @classmethod
    def engine_url(cls, url):
        # duckdb-engine's dialect without its start-up probes (see ``duckdb_dialect``)
        return url.set(drivername="duckdb+ot") if url.drivername == "duckdb" else url

    @classmethod
    def engine_kwargs(cls) -> dict:
        # DuckDB's buffer pool defaults to 80% of RAM. OT_DUCKDB_MEMORY_LIMIT bounds it per
        # process (bigger work spills to the temp directory beside the file); not by
        # default: a bound made steady cycles on a large mart slower for little memory saved
        # (measured in bench/README.md).
        limit = os.environ.get("OT_DUCKDB_MEMORY_LIMIT", "").strip()
        kwargs: dict = {"poolclass": NullPool}  # one writing process per file: see single_writer
        if limit:
            kwargs["connect_args"] = {"config": {"memory_limit": limit}}
        return kwargs

    @classmethod
    def read_only(cls, url):
        if "access_mode" in url.query:
            return url, {}
        return url.update_query_dict({"access_mode": "read_only"}), {}

    @contextmanager
    def first_load(self, conn: Connection) -> Iterator[None]:
        """Bound the buffer pool for a backfill. Unbounded (80% of RAM), DuckDB keeps every
        page the backfill wrote cached and stages the merges in memory; with this bound it
        evicts and spills instead (peak memory measured in bench/README.md). Only
        here: steady cycles on a large mart are slower under a bound (``engine_kwargs``). A
        bound set any other way (OT_DUCKDB_MEMORY_LIMIT, the URL, the caller's engine) is
        left as it is: the bound is applied only while the setting is DuckDB's default, and
        RESET brings that default back exactly."""
        import duckdb

        with conn.begin():
            current = conn.exec_driver_sql("SELECT current_setting('memory_limit')").scalar()
        with duckdb.connect() as fresh:
            default = fresh.execute("SELECT current_setting('memory_limit')").fetchone()
        if default is None or current != default[0]:
            yield
            return
        with conn.begin():
            conn.exec_driver_sql(f"SET memory_limit = '{FIRST_LOAD_MEMORY_LIMIT}'")
        try:
            yield
        finally:
            try:
                with conn.begin():
                    conn.exec_driver_sql("RESET memory_limit")
            except Exception as e:  # noqa: BLE001 - a failed cycle's own error is the one to raise
                log.warning("DuckDB's memory_limit stays at %s for this process: resetting it "
                            "failed (%s)", FIRST_LOAD_MEMORY_LIMIT, e)

    def load_arrow(self, conn: Connection, schema: str | None, table: str,
                   data: pa.Table) -> int:
        if data.num_rows == 0:
            return 0
        raw = driver(conn)
        # DuckDB 2 refuses a new scan while an earlier result is unfinished (SQLAlchemy's
        # .scalar() reads one row and stops): finish it first. No-op when nothing is pending.
        raw.complete()
        # A relation over the Arrow table, queried under a name of its own: scanned in place
        # (no copy, exact Arrow types). Not register()/unregister(): DuckDB 2.0 keeps a table
        # registered inside a transaction alive until the transaction ends, and a backfill
        # lands its whole batch in one (RSS ∝ rows; tests/test_backfill_memory.py).
        view = f"ot_chunk_{next(_names)}"
        cols = ", ".join(self.quote(c) for c in data.column_names)
        raw.from_arrow(data).query(
            view, f"INSERT INTO {self.qualified(schema, table)} ({cols}) SELECT {cols} FROM {view}"
        )
        return data.num_rows

"""One run per job at a time, across processes, and a crashed run never blocks for ever.

The lock kind follows the warehouse, chosen through a registry keyed by the backend's
registry name (never an if-chain):

- DuckDB: an OS file lock (filelock) beside the warehouse file. The OS drops it when the
  process dies. A sidecar JSON names the holder.
- PostgreSQL: a session-level advisory lock on a connection the runner holds while the
  kernel runs; the server drops it when the session ends. The holder is named through the
  session's ``application_name``.
- Redshift (no advisory locks): a lock row with an expiry in ``<control>.ot_job_locks``,
  taken with INSERT ... WHERE NOT EXISTS; an expired row (a crashed run) is deleted first.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from filelock import FileLock, Timeout

from ot_core.config import PipelineConfig
from ot_core.db.connect import Database
from ot_core.db.sql import Renderer
from ot_core.db.warehouse import ddl
from ot_core.jobs.catalogue import JobSpec
from ot_core.jobs.records import naive_utc
from ot_core.timeutil import iso, utcnow

LOCKS_TABLE = "ot_job_locks"
_KINDS: dict[str, Callable[[Database, PipelineConfig, JobSpec], JobLock]] = {}


def lock_kind(*backend_names: str):
    def deco(cls):
        for n in backend_names:
            _KINDS[n] = cls
        return cls
    return deco


def lock_for(db: Database, cfg: PipelineConfig, spec: JobSpec) -> JobLock:
    try:
        kind = _KINDS[db.backend.name]
    except KeyError:
        raise NotImplementedError(f"no job lock for a {db.backend.name} warehouse") from None
    return kind(db, cfg, spec)


class JobLock:
    """acquire() → bool without waiting; describe the holder; release() idempotent."""

    def __init__(self, db: Database, cfg: PipelineConfig, spec: JobSpec):
        self.db, self.cfg, self.spec = db, cfg, spec

    def acquire(self) -> bool:
        raise NotImplementedError

    def set_holder(self, description: str) -> None:
        """Say who holds the lock (the run id), so a skipped run can name it."""

    def holder(self) -> str:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


@lock_kind("duckdb")
class FileJobLock(JobLock):
    def __init__(self, db: Database, cfg: PipelineConfig, spec: JobSpec):
        super().__init__(db, cfg, spec)
        base = Path(str(db.url.database))
        self.path = Path(f"{base}.{spec.name}.lock")
        self.info = Path(f"{self.path}.json")
        self._lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self.set_holder(f"pid {os.getpid()} on {socket.gethostname()}, started {iso(utcnow())}")
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


@lock_kind("postgresql")
class AdvisoryJobLock(JobLock):
    def __init__(self, db: Database, cfg: PipelineConfig, spec: JobSpec):
        super().__init__(db, cfg, spec)
        self.key = zlib.crc32(f"ot_job:{spec.name}".encode())
        self._conn: sa.Connection | None = None

    def acquire(self) -> bool:
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        if not got:
            conn.close()
            return False
        self._conn = conn
        self.set_holder(f"pid {os.getpid()} on {socket.gethostname()}, started {iso(utcnow())}")
        return True

    def set_holder(self, description: str) -> None:
        if self._conn is not None:
            self._conn.execute(sa.text("SELECT set_config('application_name', :n, false)"),
                               {"n": f"ot {self.spec.name}: {description}"[:63]})

    def holder(self) -> str:
        with self.db.engine.connect() as conn:
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
            finally:
                self._conn.close()
                self._conn = None


@lock_kind("redshift")
class RowJobLock(JobLock):
    """A lock row that expires after the job's timeout (plus a margin) if never released."""

    MARGIN = timedelta(minutes=5)

    def __init__(self, db: Database, cfg: PipelineConfig, spec: JobSpec):
        super().__init__(db, cfg, spec)
        self.token = uuid.uuid4().hex
        self.table = locks_table(cfg.schemas.control)
        self.name = db.backend.qualified(cfg.schemas.control, LOCKS_TABLE)
        self._held = False

    def statements(self) -> dict[str, str]:
        r = Renderer(self.db.backend)
        return {k: r.render(f"jobs/lock_{k}.sql", locks=self.name)
                for k in ("expire", "take", "release")}

    def acquire(self) -> bool:
        sql = self.statements()
        now = utcnow()
        params = {"job": self.spec.name, "token": self.token, "now": naive_utc(now),
                  "holder": f"pid {os.getpid()} on {socket.gethostname()}, started {iso(now)}",
                  "expires_at": naive_utc(now + timedelta(seconds=self.spec.timeout_seconds)
                                          + self.MARGIN)}
        with self.db.engine.connect() as conn, conn.begin():
            self.db.backend.create_schema(conn, self.cfg.schemas.control)
            if LOCKS_TABLE not in self.db.backend.list_tables(conn, self.cfg.schemas.control,
                                                               LOCKS_TABLE):
                conn.exec_driver_sql(ddl(self.table, self.db.backend))
            conn.execute(sa.text(sql["expire"]), {"job": params["job"], "now": params["now"]})
            conn.execute(sa.text(sql["take"]), params)
            owner = conn.execute(sa.select(self.table.c.token)
                                 .where(self.table.c.job == self.spec.name)).scalar()
        self._held = owner == self.token
        return self._held

    def set_holder(self, description: str) -> None:
        t = self.table
        with self.db.engine.connect() as conn, conn.begin():
            conn.execute(sa.update(t).where(t.c.job == self.spec.name, t.c.token == self.token)
                         .values(holder=description))

    def holder(self) -> str:
        t = self.table
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.holder, t.c.expires_at)
                               .where(t.c.job == self.spec.name)).first()
        return "another run" if row is None else f"{row[0]}; lock expires {row[1]} UTC"

    def release(self) -> None:
        if self._held:
            with self.db.engine.connect() as conn, conn.begin():
                conn.execute(sa.text(self.statements()["release"]),
                             {"job": self.spec.name, "token": self.token})
            self._held = False


def locks_table(schema: str) -> sa.Table:
    return sa.Table(
        LOCKS_TABLE, sa.MetaData(),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(1000)),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        schema=schema,
    )


@contextmanager
def held(job: str, config: PipelineConfig | str | None = None,
         warehouse: Database | None = None) -> Iterator[None]:
    """Hold ``job``'s lock around a direct command (``ot cycle``) exactly as ``ot run`` does,
    so a cycle started by hand can never overlap a scheduled one. Busy → JobLocked."""
    from ot_core.config import load_config
    from ot_core.db.connect import open_database, redact
    from ot_core.errors import JobLocked
    from ot_core.jobs.catalogue import load_catalogue

    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    spec = load_catalogue().job(job)
    wh = warehouse or open_database("warehouse")
    lock = lock_for(wh, cfg, spec)
    if not spec.overlap and not lock.acquire():
        raise JobLocked(job, redact(lock.holder()))
    try:
        lock.set_holder(f"'ot {job}' command, pid {os.getpid()}, started {iso(utcnow())}")
        yield
    finally:
        lock.release()
        if warehouse is None:
            wh.dispose()

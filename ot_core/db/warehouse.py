"""One handle per warehouse: its engine, its engine's strategies, its names and its tables.

Callers open a :class:`Warehouse` once (``Warehouse.open`` or ``using``), pass it down, and
close it (``with``): every engine the library opens is disposed of, on error paths too.
What differs per engine (bulk load, checksum spelling, the job lock, maintenance) is asked
of the handle, which asks the engine's own module (``ot_core/engines``). Connections are
opened through :meth:`Warehouse.connect`, which retries transient failures (a server
restarting, a DuckDB file held by another process) and maps the rest to the project's
errors, so no command shows a driver traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.engine import Connection, Engine

from ot_core.config import PipelineConfig, resolve_config
from ot_core.db import schema
from ot_core.db.connect import Database, connect_with_retries, open_database
from ot_core.engines import Backend
from ot_core.engines.strategies import LockSite

if TYPE_CHECKING:
    from ot_core.engines.strategies import JobLock


class _LockedJob(Protocol):
    """What a job lock is taken for (a catalogue entry)."""

    @property
    def name(self) -> str: ...

    @property
    def timeout_seconds(self) -> int: ...


class Warehouse:
    """The warehouse of one config: open once, pass around, close once."""

    def __init__(self, cfg: PipelineConfig, db: Database, *, new_schemas: bool = False):
        self.cfg = cfg
        self.db = db
        self.new_schemas = new_schemas
        self.tables = schema.tables_for(cfg, db.backend)
        self._ensured = False

    # -- opening and closing ----------------------------------------------------------------
    @classmethod
    def open(cls, config: PipelineConfig | str | None = None, url: Any = None, *,
             new_schemas: bool = False) -> Warehouse:
        """The warehouse of ``config`` at ``url`` (default: ``OT_WAREHOUSE_URL`` or the
        embedded file). Nothing connects yet."""
        return cls(resolve_config(config), open_database("warehouse", url),
                   new_schemas=new_schemas)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what callers ask of it ----------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self.db.engine

    @property
    def backend(self) -> Backend:
        return self.db.backend

    @property
    def display(self) -> str:
        return self.db.display

    def names(self, table: str) -> schema.Names:
        return schema.names(self.cfg, self.backend, table)

    def connect(self, retries: int | None = None) -> Connection:
        """A connection, retried while the failure is transient (see ``connect``): the
        configured number of times, or ``retries``."""
        return connect_with_retries(
            self.db, retries=self.cfg.cycle.source_retries if retries is None else retries,
            backoff=self.cfg.cycle.retry_backoff_seconds)

    def ensure(self, conn: Connection) -> list[str]:
        """Create the missing schemas and tables, once per handle (in the caller's
        transaction); the tables created."""
        if self._ensured:
            return []
        created = schema.ensure(conn, self.cfg, self.backend, new_schemas=self.new_schemas)
        self._ensured = True
        return created

    # -- the engine's strategies ----------------------------------------------------------------
    def lock(self, spec: _LockedJob) -> JobLock:
        """The lock of job ``spec`` on this warehouse's engine (not taken yet)."""
        return self.backend.job_lock(self.lock_site(), spec.name, spec.timeout_seconds)

    @contextmanager
    def hold(self, job: str, timeout_seconds: int, holder: str,
             retries: int | None = None) -> Iterator[None]:
        """Hold job ``job``'s lock for the block (``holder`` says who, for a run that finds
        it busy); busy → JobLocked (exit 75). What changes the marts outside a cycle
        (a repair) holds the cycle's lock, so the two never overlap. ``retries`` overrides
        the configured connection retries (0: one attempt)."""
        from ot_core.errors import JobLocked
        from ot_core.secrets import redact

        lock = self.backend.job_lock(self.lock_site(retries), job, timeout_seconds)
        if not lock.acquire():
            raise JobLocked(job, redact(lock.holder()))
        try:
            lock.set_holder(holder)
            yield
        finally:
            lock.release()

    def lock_site(self, retries: int | None = None) -> LockSite:
        """What this warehouse's job locks work with (the engine's lock takes it)."""
        from ot_core.db.sql import Renderer

        return LockSite(
            engine=self.engine, url=self.db.url, connect=lambda: self.connect(retries),
            locks_table=self.tables.job_locks, render=Renderer(self.backend).render,
            ensure=lambda conn: schema.ensure(conn, self.cfg, self.backend,
                                              new_schemas=self.new_schemas))


@contextmanager
def using(config: PipelineConfig | str | None = None,
          warehouse: Warehouse | Database | str | None = None, *,
          new_schemas: bool = False) -> Iterator[Warehouse]:
    """The caller's warehouse when it passed one (left open), else one opened here and closed
    on the way out: the one place a "handle or URL" argument is resolved."""
    if isinstance(warehouse, Warehouse):
        yield warehouse
        return
    if isinstance(warehouse, Database):
        yield Warehouse(resolve_config(config), warehouse, new_schemas=new_schemas)
        return  # the caller owns the engine
    wh = Warehouse.open(config, warehouse, new_schemas=new_schemas)
    try:
        yield wh
    finally:
        wh.close()


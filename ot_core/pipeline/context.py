"""One cycle's context: what every stage (land, merge, lifecycle, raw trim) works with.

The stages used to take the same six to twelve arguments each; they now take this one
object, so a stage's signature says only what is particular to it (the window, the batch,
the table). The connection is the warehouse's; each stage opens its own transactions on it
(docs/cycle.md#transaction-boundaries).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig, TableConfig
from ot_core.db.schema import Names, names
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.engines.strategies import BatchLoad, LoadSite
from ot_core.errors import OTError
from ot_core.pipeline.control import Control
from ot_core.timeutil import utcnow

log = logging.getLogger("ot.cycle")


@dataclass
class CycleContext:
    """The warehouse connection, the config, the engine, the control tables and the cycle's
    instant (``as_of``, epoch seconds)."""

    conn: Connection
    cfg: PipelineConfig
    backend: Backend
    control: Control
    as_of: int

    @classmethod
    def open(cls, conn: Connection, cfg: PipelineConfig, backend: Backend,
             as_of: int) -> CycleContext:
        return cls(conn, cfg, backend, Control.for_config(cfg, backend), as_of)

    def at(self, as_of: int) -> CycleContext:
        """The same context at another instant (a catch-up's next cycle)."""
        return CycleContext(self.conn, self.cfg, self.backend, self.control, as_of)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.backend)

    def names(self, table: str) -> Names:
        return names(self.cfg, self.backend, table)

    def table(self, table: str) -> TableConfig:
        return self.cfg.table(table)

    @contextmanager
    def batch_load(self) -> Iterator[BatchLoad]:
        """The engine's bulk load for one landing transaction: enter it *outside* that
        transaction, so what it staged (Redshift: Parquet in S3) is released once the
        transaction has committed or rolled back. It first sweeps what an interrupted
        landing left; the callers hold the cycle lock, so no other landing is under way."""
        load = self.backend.batch_load(LoadSite(render=self.renderer.render,
                                                redshift=self.cfg.redshift.resolved()))
        load.sweep()
        try:
            yield load
        finally:
            try:
                load.release()
            except Exception as e:  # noqa: BLE001 - the batch is safe: never fail for this
                text = str(e) if isinstance(e, OTError) else e.__class__.__name__
                log.warning("staged objects not deleted (%s); the next landing deletes them",
                            text)

    @staticmethod
    def now() -> datetime:
        """The wall clock as TIMESTAMP columns hold it (UTC, no zone)."""
        return utcnow().replace(tzinfo=None)

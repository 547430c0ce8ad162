"""One cycle's context: what every stage (land, merge, lifecycle, raw trim) works with.

The stages used to take the same six to twelve arguments each; they now take this one
object, so a stage's signature says only what is particular to it (the window, the batch,
the table). The connection is the warehouse's; each stage opens its own transactions on it
(docs/cycle.md#transaction-boundaries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig, TableConfig
from ot_core.db.schema import Names, names
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.pipeline.control import Control
from ot_core.timeutil import utcnow


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

    @staticmethod
    def now() -> datetime:
        """The wall clock as TIMESTAMP columns hold it (UTC, no zone)."""
        return utcnow().replace(tzinfo=None)

"""What exists in the warehouse, read from its catalog at run time (never listed by hand).

History tables are found by name pattern ``hist_<table>_<YYYY>_h<1|2>`` in the mart schema
(docs/lifecycle.md#catalog-discovery): a table created by rotation is seen by the very next
statement, and no hand-kept list can fall behind
(docs/legacy-defects.md#3-history-tables-listed-by-hand).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.db.schema import hist_prefix
from ot_core.engines import Backend

_PERIOD = re.compile(r"^(\d{4})_h([12])$")


@dataclass(frozen=True, order=True)
class HistoryTable:
    year: int
    half: int
    table: str  # the source table it belongs to
    name: str  # the relation name, e.g. hist_uni_tracking_spath_2026_h1

    @property
    def period(self) -> str:
        return f"{self.year}_h{self.half}"


def parse_history_name(table: str, name: str) -> HistoryTable | None:
    """The history table ``name`` of ``table`` if it follows the period pattern, else None."""
    prefix = hist_prefix(table)
    m = _PERIOD.match(name[len(prefix):]) if name.startswith(prefix) else None
    return HistoryTable(int(m.group(1)), int(m.group(2)), table, name) if m else None


def history_tables(conn: Connection, cfg: PipelineConfig, backend: Backend,
                   table: str) -> list[HistoryTable]:
    """History tables of ``table`` that exist now, oldest period first."""
    found = (parse_history_name(table, n)
             for n in backend.list_tables(conn, cfg.schemas.mart, hist_prefix(table)))
    return sorted(h for h in found if h is not None)

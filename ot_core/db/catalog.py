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
from ot_core.db.warehouse import hist_prefix
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


def history_tables(conn: Connection, cfg: PipelineConfig, backend: Backend,
                   table: str) -> list[HistoryTable]:
    """History tables of ``table`` that exist now, oldest period first."""
    prefix = hist_prefix(table)
    out = []
    for name in backend.list_tables(conn, cfg.schemas.mart, prefix):
        m = _PERIOD.match(name[len(prefix):])
        if m:
            out.append(HistoryTable(int(m.group(1)), int(m.group(2)), table, name))
    return sorted(out)

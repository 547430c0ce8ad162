"""Compare a table of the source (or a legacy relation) with the warehouse by key, across
engines, without copying either side (docs/compare.md).

- ``sides``: what one side computes inside its own database (bounds, segment checksums,
  rows of the smallest segments); ``arrow``: the same checksums for a side that can only
  hash in Python (SQLite), computed over Arrow in DuckDB;
- ``bisect``: the comparison itself (checksums per segment, bisecting the ones that
  disagree) and its report;
- ``judge``: what a difference means (known wrong, pending, future) and the one judgment
  of a report;
- ``run``: one comparison from the config (``ot compare``), kept and judged;
- ``monthly``: the monthly job over every table.
"""

from ot_core.quality.compare.bisect import CompareReport, compare_sides
from ot_core.quality.compare.judge import Verdict, judge
from ot_core.quality.compare.monthly import Monthly, run_monthly
from ot_core.quality.compare.run import (
    CompareFailed,
    load_results,
    month_bounds,
    parse_key_range,
    resolve_table,
    run_compare,
    warehouse_side,
)
from ot_core.quality.compare.sides import Scope, Settings, Side, SideReader

__all__ = ["CompareFailed", "CompareReport", "Monthly", "Scope", "Settings", "Side",
           "SideReader", "compare_sides", "load_results", "month_bounds", "parse_key_range",
           "resolve_table", "run_compare", "run_monthly", "warehouse_side", "Verdict", "judge"]

"""The monthly comparison job: every table for one month, each result kept, and (within
``compare.repair_max_rows``) what was found repaired and reported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from ot_core.config import PipelineConfig
from ot_core.db.connect import Database, opened
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import CompareFailed
from ot_core.quality.compare.bisect import CompareReport
from ot_core.quality.compare.judge import FAILED, OK, WRONG
from ot_core.quality.compare.run import month_bounds, resolve_table, run_compare
from ot_core.timeutil import add_months, utcnow

if TYPE_CHECKING:
    from ot_core.quality.repair import RepairResult

# the monthly job waits this long for a running cycle before it repairs
REPAIR_WAIT_SECONDS = 600


@dataclass
class Monthly:
    """One monthly job run: a report per table, and the repair made of each (if any);
    ``ecs_drift`` = ECS rows changed at the source after extraction
    (docs/compare.md#ecs-drift)."""

    month: str
    reports: list[CompareReport]
    max_rate: float
    repairs: dict[str, RepairResult] = field(default_factory=dict)

    def outcome(self, report: CompareReport) -> str:
        """ok, repaired (wrong rows found and repaired, none left), wrong or failed."""
        fix = self.repairs.get(report.table)
        if report.status == WRONG and fix is not None and not fix.still_different:
            return "repaired"
        return report.status or OK

    @property
    def frame(self) -> pd.DataFrame:
        keep = ("table", "rows_source", "rows_target", "missing", "extra", "changed",
                "pending", "future", "mismatch_rate", "rows_transferred", "seconds",
                "changed_columns", "run_id")
        rows = []
        for r in self.reports:
            fix = self.repairs.get(r.table)
            rows.append({**{k: r.to_dict()[k] for k in keep}, "outcome": self.outcome(r),
                         "repaired": fix.keys if fix is not None else 0})
        return pd.DataFrame(rows)

    @property
    def ecs_drift(self) -> int | None:
        return next((r.changed for r in self.reports if r.table == "ecs_order_info"), None)

    @property
    def failed(self) -> list[str]:
        """Tables left with rows known wrong (not repaired, or above the rate)."""
        return [r.table for r in self.reports if self.outcome(r) in (WRONG, FAILED)]

    def raise_if_failed(self) -> None:
        if self.failed:
            raise CompareFailed(
                f"{self.month}: rows known wrong remain in {', '.join(self.failed)} (see the "
                "table above; `ot repair --from-compare RUN_ID` repairs a table's)")


def run_monthly(month: str | None = None, tables: Sequence[str] = ("ecs", "uti", "uts"), *,
                repair_max_rows: int | None = None,
                config: PipelineConfig | str | None = None, source: Database | str | None = None,
                warehouse: Warehouse | Database | str | None = None) -> Monthly:
    """Compare every table for ``month`` (default: the previous one), keeping each result,
    and repair a table's differing rows when they are at most ``repair_max_rows`` (default
    ``compare.repair_max_rows``) and the mismatch rate is within the limit.

    ``tables`` is a list, or one string of names separated by commas or spaces (a job
    parameter given on the command line)."""
    from ot_core.quality.repair import repair_keys

    if isinstance(tables, str):
        tables = [x for x in tables.replace(",", " ").split() if x]
    names = [resolve_table(t) for t in tables]  # every name checked before any work
    month = month or add_months(utcnow().replace(day=1), -1).strftime("%Y-%m")
    month_bounds(month)
    with using(config, warehouse) as wh, opened("source", source) as src:
        limit = wh.cfg.compare.repair_max_rows if repair_max_rows is None else repair_max_rows
        monthly = Monthly(month, [], wh.cfg.compare.max_mismatch_rate)
        for t in names:
            report = run_compare(t, month=month, config=wh.cfg, source=src, warehouse=wh,
                                 fail=False)
            monthly.reports.append(report)
            found = len(report.differing_keys())
            if report.status == WRONG and 0 < found <= limit:
                monthly.repairs[t] = repair_keys(wh, src, t, report.keys,
                                                 compare_run=report.run_id,
                                                 wait_seconds=REPAIR_WAIT_SECONDS)
        return monthly

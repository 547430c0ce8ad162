"""The monthly comparison job: every table for one month, each result kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ot_core.config import PipelineConfig
from ot_core.db.connect import Database, opened
from ot_core.db.warehouse import Warehouse, using
from ot_core.quality.compare.bisect import CompareReport
from ot_core.quality.compare.run import CompareFailed, month_bounds, resolve_table, run_compare
from ot_core.timeutil import add_months, utcnow


@dataclass
class Monthly:
    """One monthly job run: a report per table; ``ecs_drift`` = ECS rows changed at the
    source after extraction (docs/compare.md#ecs-drift)."""

    month: str
    reports: list[CompareReport]
    max_rate: float

    @property
    def frame(self) -> pd.DataFrame:
        keep = ("table", "rows_source", "rows_target", "missing", "extra", "changed",
                "mismatch_rate", "rows_transferred", "seconds", "changed_columns")
        return pd.DataFrame([{k: r.to_dict()[k] for k in keep} for r in self.reports])

    @property
    def ecs_drift(self) -> int | None:
        return next((r.changed for r in self.reports if r.table == "ecs_order_info"), None)

    @property
    def failed(self) -> list[str]:
        return [r.table for r in self.reports if r.mismatch_rate > self.max_rate]

    def raise_if_failed(self) -> None:
        if self.failed:
            raise CompareFailed(f"{self.month}: mismatch rate above {self.max_rate:.4%} for "
                                f"{', '.join(self.failed)} (see the table above)")


def run_monthly(month: str | None = None, tables: Sequence[str] = ("ecs", "uti", "uts"), *,
                config: PipelineConfig | str | None = None, source: Database | str | None = None,
                warehouse: Warehouse | Database | str | None = None) -> Monthly:
    """Compare every table for ``month`` (default: the previous one), keeping each result.

    ``tables`` is a list, or one string of names separated by commas or spaces (a job
    parameter given on the command line)."""
    if isinstance(tables, str):
        tables = [x for x in tables.replace(",", " ").split() if x]
    names = [resolve_table(t) for t in tables]  # every name checked before any work
    month = month or add_months(utcnow().replace(day=1), -1).strftime("%Y-%m")
    month_bounds(month)
    with using(config, warehouse) as wh, opened("source", source) as src:
        reports = [run_compare(t, month=month, config=wh.cfg, source=src, warehouse=wh,
                               fail=False) for t in names]
        return Monthly(month, reports, wh.cfg.compare.max_mismatch_rate)

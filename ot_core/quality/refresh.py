"""``ot refresh-ecs``: re-extract order rows that changed at the source after they were
extracted, a repair of ECS's *changed* rows (docs/compare.md#ecs-drift).

Why: ``ecs_order_info`` has no update time, so timestamp CDC reads each order once, when it
is created; an order edited later (a corrected weight or declared value) drifts from the
warehouse silently. The comparison finds those rows by content; this re-reads them by key
and merges them through ``quality/repair.py`` (under the cycle's lock, as an audited batch).
Never automatic: the monthly job reports the drift, and repairs it only within
``compare.repair_max_rows``.
"""

from __future__ import annotations

from datetime import datetime

from ot_core.config import PipelineConfig
from ot_core.contract import ECS
from ot_core.db.connect import Database, opened
from ot_core.db.warehouse import Warehouse, using
from ot_core.quality.compare.run import run_compare
from ot_core.quality.compare.sides import Scope
from ot_core.quality.repair import RepairResult, repair_keys
from ot_core.timeutil import parse_as_of, to_epoch

TABLE = ECS.name


def refresh_ecs(since: str | datetime | None = None, *, config: PipelineConfig | str | None = None,
                source: Database | str | None = None,
                warehouse: Warehouse | Database | str | None = None,
                dry_run: bool = False) -> RepairResult:
    """Re-read the ECS rows whose content changed at the source (orders created at or after
    ``since``, default every order) and merge them; with ``dry_run`` only count them."""
    scope = Scope()
    if since is not None:
        scope = Scope(column="add_time", lower=to_epoch(parse_as_of(since)), upper=2**63 - 1)
    with using(config, warehouse) as wh, opened("source", source) as src:
        report = run_compare(TABLE, config=wh.cfg, source=src, warehouse=wh, fail=False,
                             scope=scope)
        return repair_keys(wh, src, TABLE, {"changed": report.keys.get("changed", [])},
                           compare_run=report.run_id, dry_run=dry_run)

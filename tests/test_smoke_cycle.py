"""End to end on each backend pair: simulate, cycle, and the marts equal the source."""

from __future__ import annotations

from support.db import scalar as _count

from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate


def test_cycle_lands_every_source_row(pair):
    simulate("2026-03-01", start="2026-02-20", orders_per_day=60, seed=11, source=pair.source_url)
    r1 = run_cycle("2026-02-28T12:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)
    assert r1.tables["ecs_order_info"].rows_merged > 0
    run_cycle("2026-03-01T00:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)
    src_n = _count(pair.source_url, "SELECT COUNT(*) FROM uni_tracking_spath")
    wh_n = _count(pair.warehouse_url, "SELECT COUNT(*) FROM settlement_ods.mart_uni_tracking_spath")
    assert src_n == wh_n > 0

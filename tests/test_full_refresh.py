"""The full-refresh strategy: bounded by as_of when it names a column, and a repeated refresh
of an unchanged source lands nothing (every re-read row is compared with the mart)."""

from __future__ import annotations

import yaml
from support.db import scalar as _scalar

from ot_core.config import DEFAULT_CONFIG, parse_config
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate


def _cfg(column):
    d = yaml.safe_load(DEFAULT_CONFIG.read_text())
    d["lifecycle"]["enabled"] = False
    cdc = {"strategy": "full_refresh"}
    if column:
        cdc["column"] = column
    d["tables"]["ecs_order_info"]["cdc"] = cdc
    return parse_config(d, "test")




def test_full_refresh_is_bounded_by_as_of_and_lands_nothing_twice(embedded):
    simulate("2026-03-03", start="2026-03-01", orders_per_day=40, seed=5, source=embedded.source_url)
    cfg = _cfg("add_time")
    kw = dict(config=cfg, source=embedded.source_url, warehouse=embedded.warehouse_url)
    first = run_cycle("2026-03-02T00:00:00Z", **kw)
    cut = 1772409600  # 2026-03-02T00:00:00Z
    assert first.tables["ecs_order_info"].rows_merged == _scalar(
        embedded.source_url, f"SELECT COUNT(*) FROM ecs_order_info WHERE add_time < {cut}")
    assert _scalar(embedded.warehouse_url,
                   f"SELECT COUNT(*) FROM settlement_ods.mart_ecs_order_info WHERE add_time >= {cut}") == 0
    second = run_cycle("2026-03-02T00:15:00Z", **kw)
    new = _scalar(embedded.source_url,
                  f"SELECT COUNT(*) FROM ecs_order_info WHERE add_time >= {cut} AND add_time < {cut + 900}")
    # the refresh re-read every row, but only the new ones landed and merged
    assert second.tables["ecs_order_info"].rows_extracted > new
    assert second.tables["ecs_order_info"].rows_loaded == new
    assert second.tables["ecs_order_info"].rows_merged == new


def test_full_refresh_without_column_reads_the_whole_table(embedded):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=30, seed=5, source=embedded.source_url)
    kw = dict(config=_cfg(None), source=embedded.source_url, warehouse=embedded.warehouse_url)
    run_cycle("2026-03-01T12:00:00Z", **kw)
    total = _scalar(embedded.source_url, "SELECT COUNT(*) FROM ecs_order_info")
    assert _scalar(embedded.warehouse_url,
                   "SELECT COUNT(*) FROM settlement_ods.mart_ecs_order_info") == total
    again = run_cycle("2026-03-01T12:15:00Z", **kw)
    assert again.tables["ecs_order_info"].rows_loaded == 0

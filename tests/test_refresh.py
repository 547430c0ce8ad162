"""ECS drift: the monthly comparison counts rows changed at the source after extraction, and
the opt-in refresh re-extracts exactly those of active orders as one ordinary batch."""

from __future__ import annotations

import pytest
from dbutil import run_sql as _exec

from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.pipeline.cycle import run_cycle
from ot_core.quality.compare import CompareFailed, load_results, run_compare
from ot_core.quality.refresh import refresh_ecs
from ot_core.simulate import simulate

MART = "settlement_ods"




def test_drift_measured_then_refreshed(pair):
    simulate("2026-03-01", start="2026-02-20", orders_per_day=40, seed=5, source=pair.source_url)
    run_cycle("2026-03-01T00:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)
    cfg = load_config()
    kw = dict(config=cfg, source=pair.source_url, warehouse=pair.warehouse_url)
    clean = run_compare("ecs", month="2026-02", **kw)
    assert clean.rows_source == clean.rows_target > 0
    assert (clean.missing, clean.extra, clean.changed) == (0, 0, 0)

    active = [r[0] for r in _exec(pair.warehouse_url,
              f"SELECT order_id FROM {MART}.mart_uni_tracking_info ORDER BY order_id LIMIT 3")]
    # the third order stops being active (as if archived): its drift is measured, not refreshed
    _exec(pair.warehouse_url, f"DELETE FROM {MART}.mart_uni_tracking_info WHERE order_id = :k",
          {"k": active[2]})
    for k in active:  # partner re-assignment after creation, invisible to add_time CDC
        _exec(pair.source_url, "UPDATE ecs_order_info SET partner_id = partner_id + 1000, "
              "store_id = NULL WHERE order_id = :k", {"k": k})

    with pytest.raises(CompareFailed, match="mismatch rate"):
        run_compare("ecs", month="2026-02", **kw)
    drift = run_compare("ecs", month="2026-02", record=False, fail=False, **kw)
    assert (drift.missing, drift.extra, drift.changed) == (0, 0, 3)
    assert drift.changed_columns == {"partner_id": 3, "store_id": 3}
    assert drift.sample_keys["changed"] == sorted(active)

    wh = open_database("warehouse", pair.warehouse_url)
    results = load_results(cfg, wh)
    wh.dispose()
    assert list(results["changed"]) == [0, 3] and list(results["status"]) == ["ok", "failed"]

    marks_before = _exec(pair.warehouse_url,
                         "SELECT table_name, watermark FROM settlement_ctl.ot_watermarks ORDER BY 1")
    dry = refresh_ecs("2026-02-01", dry_run=True, **kw)
    assert (dry.drifted, dry.active, dry.refreshed) == (3, 2, 0)
    res = refresh_ecs("2026-02-01", **kw)
    assert (res.drifted, res.active, res.refreshed) == (3, 2, 2)
    assert res.sample_keys == sorted(active[:2])
    after = run_compare("ecs", month="2026-02", record=False, fail=False, **kw)
    assert (after.missing, after.extra, after.changed) == (0, 0, 1)
    assert after.sample_keys["changed"] == [active[2]]
    # a normal batch: recorded and merged, the watermark did not move
    strategy, status, rows = _exec(
        pair.warehouse_url, "SELECT strategy, status, rows_merged FROM settlement_ctl.ot_batches "
        "WHERE batch_id = :b", {"b": res.batch_id})[0]
    assert (strategy, status, rows) == ("refresh", "merged", 2)
    assert _exec(pair.warehouse_url, "SELECT table_name, watermark FROM settlement_ctl.ot_watermarks "
                 "ORDER BY 1") == marks_before
    # nothing left to refresh among active orders; the next cycle runs as usual
    assert refresh_ecs("2026-02-01", **kw).refreshed == 0
    run_cycle("2026-03-01T01:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)

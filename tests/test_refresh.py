"""ECS drift: the comparison counts rows changed at the source after extraction, and the
refresh (a repair of changed ECS rows) re-extracts exactly those as one ordinary batch."""

from __future__ import annotations

import pytest
from support.db import run_sql as _exec

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

    drifted = [r[0] for r in _exec(pair.warehouse_url,
               f"SELECT order_id FROM {MART}.mart_ecs_order_info ORDER BY order_id LIMIT 3")]
    for k in drifted:  # partner re-assignment after creation, invisible to add_time CDC
        _exec(pair.source_url, "UPDATE ecs_order_info SET partner_id = partner_id + 1000, "
              "store_id = NULL WHERE order_id = :k", {"k": k})

    with pytest.raises(CompareFailed, match="mismatch rate"):
        run_compare("ecs", month="2026-02", **kw)
    drift = run_compare("ecs", month="2026-02", record=False, fail=False, **kw)
    assert (drift.missing, drift.extra, drift.changed) == (0, 0, 3)
    assert drift.changed_columns == {"partner_id": 3, "store_id": 3}
    assert drift.sample_keys["changed"] == sorted(drifted)

    wh = open_database("warehouse", pair.warehouse_url)
    results = load_results(cfg, wh)
    wh.dispose()
    assert list(results["changed"]) == [0, 3] and list(results["status"]) == ["ok", "failed"]

    marks_before = _exec(pair.warehouse_url,
                         "SELECT table_name, watermark FROM settlement_ctl.ot_watermarks ORDER BY 1")
    dry = refresh_ecs("2026-02-01", dry_run=True, **kw)
    assert dry.found == {"changed": 3} and dry.batch_id is None and dry.reread == 0
    res = refresh_ecs("2026-02-01", **kw)
    assert (res.reread, res.merged, res.deleted, res.still_different) == (3, 3, 0, 0)
    assert res.sample_keys == sorted(drifted)
    after = run_compare("ecs", month="2026-02", record=False, fail=False, **kw)
    assert (after.missing, after.extra, after.changed) == (0, 0, 0)
    # an ordinary batch: recorded and merged, the watermark did not move
    strategy, status, rows = _exec(
        pair.warehouse_url, "SELECT strategy, status, rows_merged FROM settlement_ctl.ot_batches "
        "WHERE batch_id = :b", {"b": res.batch_id})[0]
    assert (strategy, status, rows) == ("repair", "merged", 3)
    assert _exec(pair.warehouse_url, "SELECT table_name, watermark FROM settlement_ctl.ot_watermarks "
                 "ORDER BY 1") == marks_before
    # nothing left to refresh; the next cycle runs as usual
    assert refresh_ecs("2026-02-01", **kw).keys == 0
    run_cycle("2026-03-01T01:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)

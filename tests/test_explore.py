"""Analyst functions and widgets against a small real warehouse (DuckDB; PostgreSQL too)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa
from dbutil import run_sql as _exec

from ot_core.config import load_config
from ot_core.contract import SPATH
from ot_core.db.warehouse import ddl, keyed_table
from ot_core.engines import backend_for
from ot_core.errors import UsageError
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate
from ot_core.workbench import explore
from ot_core.workbench.widgets import ExceptionTriage, OrderLookup, PartnerDashboard

MART = "settlement_ods"




def _setup(pair) -> int:
    """A warehouse after one cycle; one order's first path events moved to a history table."""
    simulate("2026-03-01", start="2026-02-20", orders_per_day=40, seed=9, source=pair.source_url)
    run_cycle("2026-03-01T00:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)
    oid = _exec(pair.warehouse_url, f"SELECT order_id FROM {MART}.mart_uni_tracking_spath "
                "GROUP BY order_id HAVING COUNT(*) >= 3 ORDER BY order_id LIMIT 1")[0][0]
    eng = sa.create_engine(pair.warehouse_url)
    be = backend_for(eng)
    hist = keyed_table(SPATH, sa.MetaData(), MART, "hist_uni_tracking_spath_2026_h1", "hist", be)
    with eng.begin() as c:
        c.exec_driver_sql(ddl(hist, be))
        first = c.execute(sa.text(f'SELECT MIN(id) FROM {MART}.mart_uni_tracking_spath '
                                  'WHERE order_id = :o'), {"o": oid}).scalar()
        c.execute(sa.text(f"INSERT INTO {MART}.hist_uni_tracking_spath_2026_h1 SELECT * FROM "
                          f"{MART}.mart_uni_tracking_spath WHERE id = :i"), {"i": first})
        c.execute(sa.text(f"DELETE FROM {MART}.mart_uni_tracking_spath WHERE id = :i"), {"i": first})
        for i, (o, kind) in enumerate([(oid, "ARCHIVE_ROUTING_GAP"), (oid + 1, "DUPLICATE_KEYS")]):
            c.execute(sa.text(f"INSERT INTO {MART}.order_tracking_exceptions (exception_id, "
                              "order_id, source_table, row_key, exception_type, detected_at) "
                              "VALUES (:i, :o, 'uni_tracking_spath', :o, :t, :d)"),
                      {"i": i + 1, "o": o, "t": kind, "d": datetime(2026, 3, 1, i)})
    eng.dispose()
    return oid


def test_order_lookup_and_health(pair):
    oid = _setup(pair)
    wb = explore.open_workbench(load_config(), pair.warehouse_url)
    n_events = _exec(pair.source_url, "SELECT COUNT(*) FROM uni_tracking_spath WHERE order_id = :o",
                     {"o": oid})[0][0]
    view = explore.order_lookup(wb, order_id=oid)
    assert len(view.ecs) == 1 and len(view.status) == 1
    assert len(view.timeline) == n_events  # mart + history together
    assert list(view.timeline["found_in"]).count("2026_h1") == 1
    assert view.timeline["pathTime"].is_monotonic_increasing
    sn = view.ecs["order_sn"].iloc[0]
    assert explore.order_lookup(wb, order_sn=sn).order_id == oid
    assert not explore.order_lookup(wb, order_id=-5).found
    assert explore.timeline_figure(view).axes[0].get_title().startswith(f"order {oid}")

    assert explore.job_runs(wb) is None  # no job-runs table yet
    assert explore.job_runs_display(wb) == "no job runs recorded yet"
    from ot_core.jobs.records import ensure_table

    eng = sa.create_engine(pair.warehouse_url)
    with eng.begin() as c:
        runs_t = ensure_table(c, load_config(), backend_for(eng))
        c.execute(sa.insert(runs_t), [
            {"run_id": i, "job": "cycle", "status": "succeeded", "notebook_path": f"r{i}.ipynb",
             "started_at": datetime(2026, 3, 1, 0, i), "ended_at": datetime(2026, 3, 1, 0, i, 5 * i)}
            for i in (1, 2)])
    eng.dispose()
    runs = explore.job_runs(wb)
    assert list(runs["run_id"]) == [2, 1] and list(runs["seconds"]) == [10.0, 5.0]
    assert explore.job_runs_figure(runs).axes[0].get_title() == "job run durations"
    fresh = explore.freshness(wb, now=datetime.fromisoformat("2026-03-01T01:00:00+00:00"))
    assert sorted(fresh["table_name"]) == sorted(load_config().tables)
    assert set(fresh["lag_minutes"]) == {60.0}
    exc = explore.open_exceptions(wb)
    assert list(exc["exception_id"]) == [1, 2]

    assert explore.resolve_exception(wb, 1, "checked: period created")["resolved_at"] is not None
    with pytest.raises(UsageError, match="already resolved"):
        explore.resolve_exception(wb, 1, "again")
    with pytest.raises(UsageError, match="note"):
        explore.resolve_exception(wb, 2, "  ")
    assert list(explore.open_exceptions(wb)["exception_id"]) == [2]
    notes = _exec(pair.warehouse_url, f"SELECT notes FROM {MART}.order_tracking_exceptions "
                  "WHERE exception_id = 1")[0][0]
    assert notes.endswith("resolved: checked: period created")
    wb.close()


def test_partner_summary_matches_source(pair):
    _setup(pair)
    wb = explore.open_workbench(load_config(), pair.warehouse_url)
    pid = explore.partners(wb)[0]
    s = explore.partner_summary(wb, pid, date(2026, 2, 20), date(2026, 2, 25))
    lo, hi = 1771545600, 1771545600 + 6 * 86400  # 2026-02-20 .. 2026-02-26 UTC
    src = _exec(pair.source_url, "SELECT COUNT(*) FROM ecs_order_info WHERE partner_id = :p "
                "AND add_time >= :lo AND add_time < :hi", {"p": pid, "lo": lo, "hi": hi})[0][0]
    assert int(s["per_day"]["orders"].sum()) == src
    assert int(s["status_mix"]["orders"].sum()) <= src
    assert list(s["latency"]["percentile"]) == ["p50", "p90", "p95", "p99"]
    wb.close()


def test_widgets_update_in_kernel(embedded):
    _setup(embedded)
    wb = explore.open_workbench(load_config(), embedded.warehouse_url)
    assert wb.wh.url.query["access_mode"] == "read_only"
    with pytest.raises(sa.exc.DBAPIError):
        with wb.wh.engine.begin() as c:
            c.exec_driver_sql(f"DELETE FROM {MART}.mart_ecs_order_info")

    dash = PartnerDashboard(wb)
    first = int(dash.frames["per_day"]["orders"].sum())
    other = dash.partner.options[-1]
    dash.partner.value = other  # what a click in the browser does
    want = _exec(embedded.source_url, "SELECT COUNT(*) FROM ecs_order_info WHERE partner_id = :p "
                 "AND add_time < :hi", {"p": other, "hi": 1772323200})[0][0]
    assert int(dash.frames["per_day"]["orders"].sum()) == want
    assert dash.message.startswith(f"partner {other}:")
    assert first > 0 and dash.figure is not None
    dash.end.value = date(2020, 1, 1)
    assert dash.frames == {} and "ends before" in dash.message

    tri = ExceptionTriage(wb)
    assert [v for _, v in tri.select.options] == [1, 2]
    tri.select.value = 2
    tri.button.click()  # no note yet: refused, nothing changes
    assert "note" in tri.status.value and [v for _, v in tri.select.options] == [1, 2]
    tri.select.value = 2
    tri.note.value = "duplicate cleared by rerun"
    tri.button.click()
    assert tri.status.value == "resolved #2"
    assert [v for _, v in tri.select.options] == [1]

    look = OrderLookup(wb)
    assert look.view is None
    look.query.value = str(explore.sample_order_id(wb))
    assert look.view is not None and look.view.found and len(look.view.timeline) > 0
    look.query.value = "no-such-order"
    assert not look.view.found
    wb.close()

"""Daily monitoring: every check passes on a clean warehouse and detects a seeded fault of
its own kind (real DuckDB + SQLite files; the job fails only after all checks ran)."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ot_core.pipeline.cycle import catch_up, run_cycle
from ot_core.quality.monitor import CHECKS, MonitoringFailed, Thresholds, run_checks
from ot_core.simulate import simulate
from ot_core.timeutil import parse_as_of, to_epoch

AS_OF = "2026-03-06T00:00:00Z"
DAY = 86400
AS_OF_EPOCH = 1772755200  # 2026-03-06T00:00:00Z
EXC_COLS = ("(exception_id, order_id, source_table, row_key, exception_type, detected_at, "
            "resolved_at, notes)")


def _exec(url: str, *statements: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as c:
        for s in statements:
            c.exec_driver_sql(s)
    eng.dispose()


def _one(url: str, sql: str):
    eng = sa.create_engine(url)
    with eng.connect() as c:
        row = c.exec_driver_sql(sql).first()
    eng.dispose()
    return row


def _by_key(report):
    return {(r.check, r.subject): r for r in report.results}


def test_checks_pass_clean_and_each_detects_its_fault(embedded):
    src, wh = embedded.source_url, embedded.warehouse_url
    simulate("2026-03-06", start="2026-03-01", orders_per_day=40, seed=21, source=src)
    catch_up(AS_OF, start="2026-03-01T12:00:00Z", step="12h", source=src, warehouse=wh)

    limits = Thresholds(missing_spath_grace_hours=72)  # the seeded data spans five days
    clean = run_checks(AS_OF, source=src, warehouse=wh, limits=limits)
    assert {r.check for r in clean.results} == {f.__name__.upper() for f in CHECKS}
    assert not clean.failed, clean.summary().to_string()
    assert len(clean.results) == 1 + 1 + 3 + 3 + 3 + 3 + 1 + 3 + 3
    clean.raise_if_failed()

    mart, ctl = "settlement_ods", "settlement_ctl"
    # the tracked order whose last path event arrived longest ago (simulated statuses follow
    # the scans, which run for days: it is aged below, past the grace)
    victim = _one(wh, f"SELECT s.order_id FROM {mart}.mart_uni_tracking_spath s JOIN "
                      f"{mart}.mart_uni_tracking_info u ON u.order_id = s.order_id "
                      "GROUP BY s.order_id ORDER BY MAX(s.add_time), s.order_id LIMIT 1")[0]
    old = AS_OF_EPOCH - 3 * 365 * DAY  # 2023: past the cutoff, a period with no history table
    ecs_yesterday = _one(wh, f"SELECT order_id FROM {mart}.mart_ecs_order_info WHERE add_time >= "
                             f"{AS_OF_EPOCH - DAY} ORDER BY order_id LIMIT 1")[0]
    _exec(
        wh,
        # ORDER_MISSING_SPATH: an old active order (last updated four days ago, past the
        # grace) loses its path events
        f"UPDATE {mart}.mart_uni_tracking_info SET update_time = {AS_OF_EPOCH - 4 * DAY} "
        f"WHERE order_id = {victim}",
        f"DELETE FROM {mart}.mart_uni_tracking_spath WHERE order_id = {victim}",
        # ARCHIVE_ROUTING_GAP: an open exception
        f"INSERT INTO {mart}.order_tracking_exceptions {EXC_COLS} VALUES ("
        "901, 5, 'uni_tracking_spath', 77, "
        "'ARCHIVE_ROUTING_GAP', TIMESTAMP '2026-03-05 10:00:00', NULL, 'seeded')",
        # not overdue: an order still tracked keeps its ECS row in the mart, however old
        f"UPDATE {mart}.mart_ecs_order_info SET add_time = {old} WHERE order_id = "
        f"(SELECT MIN(order_id) FROM {mart}.mart_uni_tracking_info)",
        # MART_RETENTION_OVERDUE + PERIOD_TABLE_MISSING_SOON: an untracked order from 2023
        f"INSERT INTO {mart}.mart_ecs_order_info SELECT order_id + 1000000000, order_sn, "
        "partner_id, store_id, shipping_channel, consignee_country, weight_grams, "
        f"declared_value, currency, {old}, _raw_id, _batch_id FROM {mart}.mart_ecs_order_info "
        f"WHERE order_id = (SELECT MIN(order_id) FROM {mart}.mart_ecs_order_info)",
        # DUPLICATE_KEYS: one tracking state held twice
        f"INSERT INTO {mart}.mart_uni_tracking_info SELECT * FROM {mart}.mart_uni_tracking_info "
        f"WHERE order_id = (SELECT MAX(order_id) FROM {mart}.mart_uni_tracking_info)",
        # FRESHNESS_LAG: the path-event watermark three hours behind
        f"UPDATE {ctl}.ot_watermarks SET watermark = watermark - 10800 "
        "WHERE table_name = 'uni_tracking_spath'",
        # RAW_TRIM_OVERDUE: a raw row of the first (long merged) batch still there
        "INSERT INTO settlement_public.uni_tracking_info_raw SELECT *, 1, 1, TIMESTAMP '2026-03-01' "
        f"FROM (SELECT * EXCLUDE (_raw_id, _batch_id) FROM {mart}.mart_uni_tracking_info LIMIT 1)",
        # UNMERGED_BATCHES: a batch loaded two hours ago and never merged
        f"INSERT INTO {ctl}.ot_batches (batch_id, table_name, strategy, as_of, upper_bound, "
        f"rows_extracted, rows_loaded, status, loaded_at) VALUES (9999, 'ecs_order_info', "
        f"'timestamp', {AS_OF_EPOCH - 7200}, {AS_OF_EPOCH - 7200}, 1, 1, 'loaded', TIMESTAMP '2026-03-05 22:00:00')",
        # SOURCE_COUNT_MISMATCH: one of yesterday's orders lost from the warehouse
        f"DELETE FROM {mart}.mart_ecs_order_info WHERE order_id = {ecs_yesterday}",
    )
    faulty = run_checks(AS_OF, source=src, warehouse=wh, limits=limits)
    got = _by_key(faulty)
    expect = {
        ("ORDER_MISSING_SPATH", "uni_tracking_info"): 1,
        ("ARCHIVE_ROUTING_GAP", "order_tracking_exceptions"): 1,
        ("MART_RETENTION_OVERDUE", "mart_ecs_order_info"): 1,
        ("DUPLICATE_KEYS", "mart_uni_tracking_info"): 1,
        ("FRESHNESS_LAG", "uni_tracking_spath"): 1,
        ("RAW_TRIM_OVERDUE", "uni_tracking_info_raw"): 1,
        ("UNMERGED_BATCHES", "ot_batches"): 1,
        ("PERIOD_TABLE_MISSING_SOON", "ecs_order_info"): 1,
        ("SOURCE_COUNT_MISMATCH", "ecs_order_info"): 1,
        # the duplicated tracking state is also one row too many against the source
        ("SOURCE_COUNT_MISMATCH", "uni_tracking_info"): 1,
    }
    for key, n in expect.items():
        assert got[key].status == "fail" and got[key].count == n, (key, got[key])
    assert int(got[("ORDER_MISSING_SPATH", "uni_tracking_info")].sample.order_id.iloc[0]) == victim
    assert "hist_ecs_order_info_2023_h1" in got[("PERIOD_TABLE_MISSING_SOON", "ecs_order_info")].detail
    # the faults stay in their own checks
    assert got[("DUPLICATE_KEYS", "mart_ecs_order_info")].status == "ok"
    assert got[("FRESHNESS_LAG", "ecs_order_info")].status == "ok"
    with pytest.raises(MonitoringFailed, match="10 of 21 checks failed"):
        faulty.raise_if_failed()
    # both runs were stored; the 30-day history feeds the chart
    stored = _one(wh, f"SELECT COUNT(*), SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END) "
                      f"FROM {ctl}.ot_check_results")
    assert tuple(stored) == (42, 10)
    assert len(faulty.history) == 42
    sample = _one(wh, f"SELECT sample FROM {ctl}.ot_check_results WHERE check_name = "
                      "'UNMERGED_BATCHES' AND status = 'fail'")[0]
    assert json.loads(sample)[0]["batch_id"] == 9999
    assert faulty.chart().axes[0].get_title().startswith("failing rows per check")
    # a looser threshold makes the stale watermark acceptable again
    loose = run_checks(AS_OF, source=src, warehouse=wh, use_source=False,
                       limits=Thresholds(freshness_max_minutes=240, missing_spath_grace_hours=72))
    assert _by_key(loose)[("FRESHNESS_LAG", "uni_tracking_spath")].status == "ok"


def test_routing_gap_counts_only_its_own_exceptions_and_the_chart_spans_its_days(embedded):
    src, wh = embedded.source_url, embedded.warehouse_url
    simulate("2026-03-06", start="2026-03-03", orders_per_day=20, seed=22, source=src)
    catch_up(AS_OF, start="2026-03-04T00:00:00Z", step="12h", source=src, warehouse=wh)
    mart = "settlement_ods"
    _exec(wh, f"INSERT INTO {mart}.order_tracking_exceptions {EXC_COLS} VALUES ("
        "902, 5, 'ecs_order_info', 78, "
              "'ORDER_RESTORE_CONFLICT', TIMESTAMP '2026-03-05 10:00:00', NULL, 'another kind')")
    limits = Thresholds(missing_spath_grace_hours=72)
    other = _by_key(run_checks(AS_OF, warehouse=wh, use_source=False, limits=limits))
    gap = other[("ARCHIVE_ROUTING_GAP", "order_tracking_exceptions")]
    assert (gap.status, gap.count) == ("ok", 0)
    _exec(wh, f"INSERT INTO {mart}.order_tracking_exceptions {EXC_COLS} VALUES ("
        "903, 5, 'uni_tracking_spath', 79, "
              "'ARCHIVE_ROUTING_GAP', TIMESTAMP '2026-03-05 11:00:00', NULL, 'seeded')")
    report = run_checks(AS_OF, warehouse=wh, use_source=False, limits=limits)
    gap = _by_key(report)[("ARCHIVE_ROUTING_GAP", "order_tracking_exceptions")]
    assert (gap.status, gap.count) == ("fail", 1)
    assert gap.sample.exception_id.tolist() == [903]

    # one day of results: the x axis covers days around it, not years, labelled by date
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    assert report.history["as_of"].nunique() == 1
    fig = report.chart()
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    lo, hi = (mdates.num2date(x) for x in ax.get_xlim())
    assert (hi - lo).days <= 3 and lo.year == hi.year == 2026
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "2026-03-06" in labels and all(re.fullmatch(r"\d{4}-\d\d-\d\d", t) for t in labels)
    assert ax.get_ylim()[0] == 0 and ax.get_xlabel() and ax.get_ylabel() == "rows"


@pytest.mark.slow
def test_a_healthy_warehouse_of_220_days_passes_every_check(embedded, tmp_path):
    """The lifecycle keeps what it keeps on purpose (the ECS rows of tracked orders) and the
    retention is judged at its last run's instant, not at the check's: a healthy warehouse
    passes whenever the checks run (here, a day after the last cycle)."""
    from ot_core.cli import main

    end = "2026-11-01T00:00:00Z"
    src, wh = embedded.source_url, embedded.warehouse_url
    simulate(end, days=220, orders_per_day=150, seed=31, source=src)
    run_cycle(end, source=src, warehouse=wh)  # one backfill, as `ot simulate; ot cycle` does
    later = "2026-11-01T23:00:00Z"
    report = run_checks(later, source=src, warehouse=wh,
                        limits=Thresholds(freshness_max_minutes=24 * 60))
    assert not report.failed, report.summary().to_string()
    kept = _one(wh, "SELECT COUNT(*) FROM settlement_ods.mart_ecs_order_info e WHERE add_time < "
                    f"{to_epoch(parse_as_of(end)) - 190 * DAY}")[0]
    assert kept > 0  # old orders still tracked: their rows stay, and are not flagged
    res = CliRunner().invoke(main, ["run", "daily_monitoring", "-p", "as_of", later,
                                    "-p", "freshness_max_minutes", "1440"], env=embedded.env())
    assert res.exit_code == 0, res.output

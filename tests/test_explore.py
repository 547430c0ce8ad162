"""Analyst functions and widgets against a small real warehouse (DuckDB; PostgreSQL too)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from support.db import run_sql as _exec

from ot_core.config import load_config
from ot_core.contract import SPATH, STATUS_LABELS
from ot_core.db.schema import ddl, keyed_table
from ot_core.engines import backend_for
from ot_core.errors import UsageError
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate
from ot_core.workbench import charts, explore
from ot_core.workbench.present import Html, Message
from ot_core.workbench.widgets import (
    ExceptionTriage,
    OrderLookup,
    PartnerDashboard,
    PipelineHealth,
)

MART = "settlement_ods"
CONTROL = load_config().schemas.control
VIEWS = (OrderLookup, PartnerDashboard, PipelineHealth, ExceptionTriage)
TIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"


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


def _wb(pair) -> explore.Workbench:
    wb = explore.open_workbench(load_config(), pair.warehouse_url)
    assert wb.ok, wb.problem
    return wb


def _matches_csv(files: dict[str, str], frames: dict[str, pd.DataFrame], view=None) -> None:
    """Every shown frame is offered for download, reads back exactly as shown, and the link
    the browser gets carries that same text (a data: URI; nothing written anywhere)."""
    import base64
    import io
    import re

    assert len(files) == len(frames)
    for name, frame in frames.items():
        (fname,) = [f for f in files if f"_{name}_" in f]
        back = pd.read_csv(io.StringIO(files[fname]), dtype=str, keep_default_na=False)
        assert list(back.columns) == list(frame.columns)
        assert back.equals(frame.astype(str).reset_index(drop=True)), name
    if view is not None:
        markup = view.said_item.markup
        links = dict(re.findall(r"download='([^']+)' href='data:text/csv;charset=utf-8;base64,"
                                r"([^']+)'", markup))
        assert {k: base64.b64decode(v).decode() for k, v in links.items()} == files


def test_order_lookup_and_health(pair):
    oid = _setup(pair)
    wb = _wb(pair)
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
    assert charts.timeline_figure(view).axes[0].get_title().startswith(f"order {oid}")

    assert explore.job_runs(wb).empty  # the table exists (created with the warehouse), empty
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
    fresh = explore.freshness(wb, now=datetime.fromisoformat("2026-03-01T00:20:00+00:00"))
    assert sorted(fresh["table_name"]) == sorted(load_config().tables)
    assert set(fresh["lag_minutes"]) == {20.0} and set(fresh["verdict"]) == {"OK"}
    fresh = explore.freshness(wb, now=datetime.fromisoformat("2026-03-01T01:00:00+00:00"))
    assert set(fresh["lag_minutes"]) == {60.0} and set(fresh["verdict"]) == {"late"}  # > 2 × 15m
    exc = explore.open_exceptions(wb)
    assert list(exc["exception_id"]) == [1, 2]

    assert explore.resolve_exception(wb, 1, "checked: period created")["resolved_at"] is not None
    with pytest.raises(UsageError, match="already resolved"):
        explore.resolve_exception(wb, 1, "again")
    with pytest.raises(UsageError, match="note"):
        explore.resolve_exception(wb, 2, "  ")
    assert list(explore.open_exceptions(wb)["exception_id"]) == [2]
    assert list(explore.resolved_exceptions(wb)["exception_id"]) == [1]
    notes = _exec(pair.warehouse_url, f"SELECT notes FROM {MART}.order_tracking_exceptions "
                  "WHERE exception_id = 1")[0][0]
    assert notes.endswith("resolved: checked: period created")
    wb.close()


def test_partner_summary_matches_source(pair):
    _setup(pair)
    wb = _wb(pair)
    choices = explore.partner_choices(wb)
    src_total = _exec(pair.source_url, "SELECT COUNT(*) FROM ecs_order_info")[0][0]
    assert int(choices["orders"].sum()) == src_total
    assert choices["orders"].is_monotonic_decreasing
    pid = explore.partners(wb)[0]
    s = explore.partner_summary(wb, pid, date(2026, 2, 20), date(2026, 2, 25))
    lo, hi = 1771545600, 1771545600 + 6 * 86400  # 2026-02-20 .. 2026-02-26 UTC
    src = _exec(pair.source_url, "SELECT COUNT(*) FROM ecs_order_info WHERE partner_id = :p "
                "AND add_time >= :lo AND add_time < :hi", {"p": pid, "lo": lo, "hi": hi})[0][0]
    assert int(s["per_day"]["orders"].sum()) == src
    assert not s["per_day"]["partial"].any()  # extracted up to 2026-03-01 00:00
    assert int(s["status_mix"]["orders"].sum()) <= src
    assert list(s["latency"]["percentile"]) == ["p50", "p90", "p95", "p99"]
    wb.close()


def test_no_warehouse_is_one_line_everywhere(tmp_path, monkeypatch):
    import duckdb

    monkeypatch.delenv("OT_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("OT_DATA_DIR", str(tmp_path / "nodata"))
    wb = explore.open_workbench()
    target = tmp_path / "nodata" / "warehouse.duckdb"
    assert wb.problem == f"No warehouse at {target}: run `ot demo`, or set OT_WAREHOUSE_URL."
    assert not (tmp_path / "nodata").exists()  # opening never creates an empty data folder
    assert wb._repr_markdown_().endswith(wb.problem)
    for view_class in VIEWS:
        v = view_class(wb)
        assert v.message == wb.problem and v.frames == {}
        assert v.export_button.disabled
        assert [type(i) for i in v.shown] == [Message]
    assert not (tmp_path / "nodata").exists()

    garbage = tmp_path / "garbage.duckdb"
    garbage.write_text("not a database file")
    wb = explore.open_workbench(warehouse=f"duckdb:///{garbage}")
    assert "cannot be read" in wb.problem and "\n" not in wb.problem
    assert wb.problem.endswith("run `ot demo`, or set OT_WAREHOUSE_URL.")
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    wb = explore.open_workbench(warehouse=f"duckdb:///{empty}")
    assert wb.problem.endswith("has no marts yet: run `ot demo`, or set OT_WAREHOUSE_URL.")
    wb.close()  # the notebooks' last cell: nothing to release, no error
    monkeypatch.setenv("OT_WAREHOUSE_URL", "not a url")
    wb = explore.open_workbench()
    assert "OT_WAREHOUSE_URL" in wb.problem and PartnerDashboard(wb).message == wb.problem


def test_a_busy_warehouse_is_one_line(embedded, tmp_path):
    """A job holding the DuckDB file for writing: the views say so in one line, then recover."""
    import subprocess
    import sys

    _setup(embedded)
    wb = _wb(embedded)
    path = embedded.warehouse_url.removeprefix("duckdb:///")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(120)", path],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        look = OrderLookup(wb)
        assert look.message.startswith("The warehouse is busy (") and "\n" not in look.message
        assert look.message.endswith("try again in a minute.") and look.frames == {}
        assert PipelineHealth(wb).message == look.message
    finally:
        holder.kill()
        holder.wait()
    look.query.value = str(explore.sample_order_id(wb))
    assert look.view.found and look.message.startswith("**Order ")
    wb.close()


def test_status_labels_come_from_the_contract(embedded):
    from ot_core import simulate as sim

    assert sim.STATUS_EVENTS is STATUS_LABELS
    simulate("2026-03-01", start="2026-02-20", orders_per_day=40, seed=9, source=embedded.source_url)
    pairs = _exec(embedded.source_url, "SELECT DISTINCT status, latest_event FROM uni_tracking_info")
    assert len(pairs) > 3 and all(STATUS_LABELS[s] == text for s, text in pairs)


@pytest.mark.slow
def test_order_lookup_view(embedded, tmp_path):
    import re

    oid = _setup(embedded)
    wb = _wb(embedded)
    assert wb.wh.url.query["access_mode"] == "read_only"
    with pytest.raises(sa.exc.DBAPIError):
        with wb.wh.engine.begin() as c:
            c.exec_driver_sql(f"DELETE FROM {MART}.mart_ecs_order_info")
    look = OrderLookup(wb)
    default = look.view.order_id
    want = _exec(embedded.warehouse_url, f"SELECT MAX(order_id) FROM (SELECT s.order_id FROM "
                 f"{MART}.mart_uni_tracking_spath s JOIN {MART}.mart_uni_tracking_info u "
                 f"ON u.order_id = s.order_id GROUP BY s.order_id HAVING COUNT(*) >= :n) x",
                 {"n": explore.MIN_EVENTS})[0][0]
    assert default == want and len(look.view.status) == 1
    assert look.query.value == str(default) and look.lookups == 1
    assert look.query.continuous_update is False  # Enter (or leaving the box), not keystrokes

    look.query.value = str(oid)  # what Enter in the box sends
    assert look.lookups == 2 and look.view.order_id == oid
    look.button.click()
    assert look.lookups == 3
    f = look.frames
    epochs = {"add_time", "pathTime", "update_time", "add_time_at", "pathTime_at", "update_time_at"}
    for frame in f.values():
        assert not epochs & set(frame.columns) and not frame.isna().any().any()
    fields = dict(zip(f["order"]["field"], f["order"]["value"], strict=True))
    assert fields["order_id"] == str(oid) and re.match(TIME, fields["created (UTC)"])
    code = _exec(embedded.warehouse_url, f"SELECT status FROM {MART}.mart_uni_tracking_info "
                 "WHERE order_id = :o", {"o": oid})[0][0]
    assert f["status"]["status"].tolist() == [f"{STATUS_LABELS[code]} ({code})"]
    events = f["events"]
    assert len(events) == len(look.view.timeline) >= 3
    assert events["event time (UTC)"].str.match(TIME).all()
    assert look.message.startswith(f"**Order {oid}**")
    ax = charts.timeline_figure(look.view).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(events) and labels[0].startswith(events["event"].iloc[0])
    assert events["event"].iloc[0] == "Label created (CREATED)"  # codes named, as statuses are
    assert not charts.label_overlaps(charts.timeline_figure(look.view))
    assert ax.get_xlabel() == "event time (UTC)"
    assert any(isinstance(i, Html) and "overflow-x:auto" in i.markup for i in look.shown)

    before = sorted(Path.cwd().iterdir())
    _matches_csv(look.export(), f, look)
    assert look.said.startswith("Download 3 CSV files (what is shown now): ")
    assert sorted(Path.cwd().iterdir()) == before  # nothing written next to the notebook
    look.query.value = "no-such-order"
    assert look.message == "No order `no-such-order` in the mart or any history table."
    assert look.frames == {} and look.export() == {}
    assert look.said == "Nothing to download yet: pick something to show first."
    wb.close()


@pytest.mark.slow
def test_partner_dashboard_view(embedded, tmp_path):
    _setup(embedded)
    until = "2026-03-01T12:00:00Z"  # the last day only half extracted
    simulate(until, start="2026-02-20", orders_per_day=40, seed=9, source=embedded.source_url)
    run_cycle(until, source=embedded.source_url, warehouse=embedded.warehouse_url)
    wb = _wb(embedded)
    dash = PartnerDashboard(wb)
    counts = _exec(embedded.source_url, "SELECT partner_id, COUNT(*) FROM ecs_order_info "
                   "GROUP BY partner_id ORDER BY 2 DESC, 1")
    busiest, n = counts[0]
    assert dash.partner_id == busiest  # the default is the busiest partner
    assert dash.partner.options[0] == f"{busiest} · {n:,} order{'s' if n != 1 else ''}"
    assert dash.partner.ensure_option and len(dash.partner.options) == len(counts)
    assert dash.message.startswith(f"**Partner {busiest}**: {n:,} orders")

    one = next(p for p, c in counts if c == 1)  # a partner with one order reads "1 order"
    dash.partner.value = dash.option(one)
    assert dash.option(one).endswith(" · 1 order")
    assert dash.message.startswith(f"**Partner {one}**: 1 order created")
    other = next(p for p, c in counts if 5 < c < n)
    dash.partner.value = dash.option(other)  # what picking in the browser's list does
    want = dict(counts)[other]
    assert dash.message.startswith(f"**Partner {other}**: {want:,} orders")
    per_day = dash.summary["per_day"]
    assert int(per_day["orders"].sum()) == want
    days = pd.date_range(dash.start.value, dash.end.value).date  # every day, zeros included
    assert list(per_day["day"]) == list(days)
    assert list(per_day["partial"]) == [d == date(2026, 3, 1) for d in per_day["day"]]
    assert list(dash.frames["orders_per_day"]["complete"])[-1] == "partial: extracted until 12:00 UTC"
    assert set(dash.frames["status_mix"]["status"]) <= {f"{t} ({c})" for c, t in STATUS_LABELS.items()}
    lat = dash.frames["latency_hours"]
    assert lat["hours (created → delivered)"].str.match(r"^(\d{1,3}(,\d{3})*\.\d|—)$").all()
    delivered = int(dash.summary["delivered"]["delivered"].iloc[0])
    assert set(lat["delivered orders"]) == {f"{delivered:,}"}  # the count beside every percentile
    assert "Latency counts delivered orders only" in dash.message
    dash.partner.value = "99999"  # not a partner: said, the shown partner kept
    assert dash.partner_id == other and "No partner `99999`" in dash.said

    fig = charts.dashboard_figure(dash.summary)
    a, b, c = fig.axes[:3]
    assert a.get_xlabel() and a.get_ylabel() and b.get_xlabel() and c.get_ylabel()
    if per_day["partial"].any():
        assert [t.get_text() for t in a.get_legend().get_texts()] == [charts.PARTIAL]
        assert a.patches[-1].get_hatch() == "//" and a.patches[0].get_hatch() in (None, "")
    assert min(t.get_fontsize() for t in a.get_xticklabels()) >= 8
    assert charts.label_overlaps(charts.dashboard_figure(
        dash.summary, start=dash.start.value, end=dash.end.value)) == []
    ticks = [t for t in a.get_yticks() if t >= 0]
    assert all(float(t).is_integer() for t in ticks)  # whole orders
    assert [t.get_text() for t in b.get_yticklabels()] == [
        f"{STATUS_LABELS[s]} ({s})" for s in dash.summary["status_mix"]["status"]]

    dash.end.value = dash.start.value = date(2026, 2, 25)  # a single day
    lo, hi = charts.dashboard_figure(dash.summary).axes[0].get_xlim()
    assert hi - lo >= 1  # at least a day wide, not a zero-width axis
    _matches_csv(dash.export(), dash.frames, dash)

    dash.end.value = date(2026, 2, 24)
    assert dash.frames == {} and "ends (2026-02-24) before it starts (2026-02-25)" in dash.message
    wb.close()


def _write_record(path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# cycle RECORD-MARK-7")])
    nbformat.write(nb, path)


def _seed_runs_and_checks(url: str, notebook: Path) -> None:
    from ot_core.db.schema import Tables
    from ot_core.jobs.records import ensure_table

    eng = sa.create_engine(url)
    t0 = datetime(2026, 3, 1, 0, 0)
    with eng.begin() as c:
        runs_t = ensure_table(c, load_config(), backend_for(eng))
        c.execute(sa.insert(runs_t), [
            {"run_id": 1, "job": "cycle", "status": "succeeded", "notebook_path": str(notebook),
             "started_at": t0, "ended_at": t0 + timedelta(seconds=42), "error": None},
            {"run_id": 2, "job": "cycle", "status": "failed", "notebook_path": None,
             "started_at": t0 + timedelta(minutes=15), "ended_at": t0 + timedelta(minutes=16),
             "error": "source unreachable\nTraceback ..."},
            {"run_id": 3, "job": "cycle", "status": "skipped", "notebook_path": None,
             "started_at": t0 + timedelta(minutes=30), "ended_at": t0 + timedelta(minutes=30),
             "error": "locked by run 2"}])
        checks = Tables(load_config(), backend_for(eng)).check_results  # created with the rest
        old, new = datetime(2026, 2, 28, 6), datetime(2026, 3, 1, 6)
        rows = [(old, "duplicate_keys", "ecs_order_info", "fail", 3),
                (new, "duplicate_keys", "ecs_order_info", "ok", 0),
                (new, "freshness_lag", "uni_tracking_info", "fail", 1)]
        c.execute(sa.insert(checks), [
            {"checked_at": at, "as_of": at, "check_name": name, "subject": subject,
             "status": status, "row_count": n, "detail": f"{name} detail", "sample": "[]"}
            for at, name, subject, status, n in rows])
    eng.dispose()


@pytest.mark.slow
def test_pipeline_health_view(embedded, tmp_path):
    import re

    _setup(embedded)
    wb = _wb(embedded)
    health = PipelineHealth(wb, now=datetime(2026, 3, 1, 0, 20, tzinfo=UTC))
    texts = [i.text for i in health.shown if isinstance(i, Message)]
    assert health.runs.empty and texts[0].startswith("No job runs recorded yet")
    images = [type(i).__name__ for i in health.shown].count("Image")
    assert images == 1  # the freshness chart only: no empty run-duration axes
    assert texts[1].startswith("Freshness **OK**")
    assert "No daily check results yet: run `ot run daily_monitoring`." in texts
    assert health.open_button.disabled and health.record.options == ()

    notebook = tmp_path / "runs" / "cycle-1.ipynb"
    _write_record(notebook)
    _seed_runs_and_checks(embedded.warehouse_url, notebook)
    health.now = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 60 min behind: late (> 2 × 15 min)
    health.refresh_button.click()
    texts = [i.text for i in health.shown if isinstance(i, Message)]
    assert texts[0] == "**Job runs**: the last 3 runs, 1 failed, 1 skipped."
    runs = health.frames["job_runs"]
    assert list(runs["duration"]) == ["—", "1 min 00 s", "42.0 s"]  # newest first
    assert list(runs["error"]) == ["locked by run 2", "source unreachable", ""]
    assert list(runs["record"]) == ["", "", "cycle-1"] and not runs.isna().any().any()
    (shown,) = [i for i in health.shown if isinstance(i, Html) and i.text.startswith("recent job runs")]
    assert "nan" not in shown.markup.lower() and "…" not in shown.markup
    assert re.search(r"<td style='[^']*color:#cf222e[^']*'>✖ failed</td>", shown.markup)  # red
    assert re.search(r"<td style='[^']*color:#1a7f37[^']*'>✔ succeeded</td>", shown.markup)
    assert [v for _, v in health.record.options] == [1] and not health.open_button.disabled
    health.open_button.click()  # no twin: the notebook rendered now
    opened = health.opened
    assert isinstance(opened, Html) and "srcdoc=" in opened.markup and "sandbox=''" in opened.markup
    assert "RECORD-MARK-7" in opened.markup and "https://cdn" not in opened.markup
    assert "download='cycle-1.html'" in opened.markup
    notebook.with_suffix(".html").write_text(
        "<html><head><script src='https://cdn.example.com/x.js'></script></head>"
        "<body>twin of run 1</body></html>")
    health.open_button.click()  # the twin, when written, is what is shown
    assert "twin of run 1" in health.opened.markup and "cdn.example" not in health.opened.markup
    notebook.unlink()
    notebook.with_suffix(".html").unlink()
    health.open_button.click()
    assert health.opened.text == ("The record of run 1 of cycle (succeeded) is missing: "
                                  "cycle-1.ipynb is no longer in the runs folder.")

    ax = charts.job_runs_figure(health.runs).axes[0]
    plotted = sum(len(line.get_xdata()) for line in ax.get_lines())
    assert plotted == 2  # the skipped run is not a duration
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "failed (1)" in legend and "1 skipped (not plotted)" in legend
    assert ax.get_xlabel() == "started (UTC)" and ax.get_ylabel() == "duration (s)"

    assert set(health.fresh["verdict"]) == {"late"}
    late = next(t for t in texts if t.startswith("Freshness"))
    assert late.startswith("Freshness **late**: ecs_order_info (1 h 00 min behind)")
    assert "late means more than 2 × the 15 min cycle interval" in late
    assert list(health.frames["freshness"]["behind now"]) == ["1 h 00 min"] * 3

    checks = health.frames["daily_checks"]  # the latest run only, failing first
    assert list(checks["check"]) == ["freshness_lag", "duplicate_keys"]
    assert list(checks["status"]) == ["fail", "ok"]
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # outside
    assert charts.label_overlaps(charts.job_runs_figure(health.runs)) == []
    assert any(t.startswith("**Daily checks** of 2026-03-01 06:00:00 UTC") and "1 ok, 1 failing" in t
               for t in texts)
    assert list(health.frames["open_exceptions"]["id"]) == ["1", "2"]
    _matches_csv(health.export(), health.frames, health)
    wb.close()


def test_exception_triage_view(embedded, tmp_path):
    oid = _setup(embedded)
    wb = _wb(embedded)
    tri = ExceptionTriage(wb)
    assert [v for _, v in tri.select.options] == [1, 2]
    assert tri.select.value is None  # nothing pre-selected
    assert tri.button.disabled  # nothing to resolve until one is picked
    tri.button.click()
    assert tri.said == "Pick an exception in the list first."
    tri.select.value = 2
    assert tri.said == "" and not tri.button.disabled  # the warning went with the pick
    assert "[order lookup](order_lookup.ipynb) and enter " + str(oid + 1) in tri.detail.text
    tri.button.click()  # no note yet
    assert tri.said.startswith("Write a note first") and "--note" not in tri.said
    assert tri.pending is None

    tri.note.value = "duplicate cleared by rerun"
    tri.button.click()
    question = f"#2 DUPLICATE_KEYS order {oid + 1}"
    assert tri.pending == 2 and tri.question.value == f"Resolve <b>{question}</b>?"
    assert tri.confirm_box.layout.display == "flex"
    tri.select.value = 1  # another pick withdraws the question
    assert tri.pending is None and tri.confirm_box.layout.display == "none"
    tri.select.value = 2
    tri.button.click()
    tri.cancel.click()
    assert tri.pending is None and tri.said == "Not resolved."
    assert [v for _, v in tri.select.options] == [1, 2]

    tri.button.click()
    tri.confirm.click()
    assert tri.said.startswith(f"Resolved {question} at ") and tri.said.endswith(" UTC.")
    assert [v for _, v in tri.select.options] == [1]
    assert tri.select.value is None and tri.note.value == ""  # the next one is not pre-selected
    state = dict(_exec(embedded.warehouse_url, f"SELECT exception_id, resolved_at IS NOT NULL "
                       f"FROM {MART}.order_tracking_exceptions"))
    assert state == {1: False, 2: True}
    done = tri.frames["recently_resolved"]
    assert list(done["id"]) == ["2"] and done["resolved (UTC)"].str.match(TIME).all()
    assert done["notes"].iloc[0].endswith("duplicate cleared by rerun")
    assert done["by"].iloc[0]  # who resolved it: recorded by the write path, not typed

    tri.select.value = 1
    tri.note.value = "period created"
    tri.button.click()
    explore.resolve_exception(wb, 1, "someone else was faster")  # meanwhile, elsewhere
    tri.confirm.click()
    assert "was not resolved" in tri.said and "already resolved" in tri.said
    assert tri.select.options == () and tri.message.startswith("No open exceptions: nothing to "
                                                               "resolve.")
    assert tri.button.disabled and tri.select.layout.display == "none"
    _matches_csv(tri.export(), tri.frames, tri)
    wb.close()


def test_compare_chart_draws_the_limit_and_tells_tables_apart():
    from ot_core.workbench.charts import compare_figure

    results = pd.DataFrame({
        "table_name": ["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"] * 2,
        "month": ["2026-01"] * 3 + ["2026-02"] * 3,
        "mismatch_rate": [0.0, 0.0, 0.0, 0.0, 0.002, 0.0],
        "run_at": pd.to_datetime(["2026-02-02"] * 3 + ["2026-03-02"] * 3)})
    ax = compare_figure(results, 0.001).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    limit = next(v for k, v in lines.items() if k.startswith("limit"))
    assert set(limit.get_ydata()) == {0.001} and "compare.max_mismatch_rate" in limit.get_label()
    series = [lines[t] for t in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath")]
    assert len({s.get_marker() for s in series}) == 3  # distinct markers
    assert len({tuple(s.get_xdata()) for s in series}) == 3  # offset: none hides another
    assert ax.get_ylim()[1] > 0.002  # the highest point and the limit are both in view

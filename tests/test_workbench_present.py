"""What an analyst reads, checked without a warehouse: tick labels that stand clear, counts
in words, partial days, tables that wrap instead of cutting, texts for Voilà visitors, and
notebooks saved without outputs."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

import nbformat
import pandas as pd
import pytest

from ot_core.contract import PATH_LABELS, path_label
from ot_core.workbench import charts, lab, present

DAY = 86400


def _epoch(*a) -> int:
    return int(datetime(*a, tzinfo=UTC).timestamp())


def test_overlap_check_finds_crowded_labels_and_passes_clear_ones():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.set_xticks(range(10), [f"label number {i}" for i in range(10)])
    assert charts.label_overlaps(fig)  # ten long labels on a 3-inch axis collide
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], marker="o", label="a line")
    ax.legend(loc="center")
    ax.set_xlim(-1, 2)
    ax.set_ylim(-1, 2)
    ax.plot([0.5], [0.5], marker="x")
    assert any("legend hides" in f for f in charts.label_overlaps(fig))
    fig = Figure(figsize=(6, 2))
    ax = fig.subplots()
    ax.set_xticks(range(3), ["a", "b", "c"])
    assert charts.label_overlaps(fig) == []


@pytest.mark.parametrize("span", [timedelta(seconds=10), timedelta(minutes=50), timedelta(hours=7),
                                  timedelta(days=3), timedelta(days=40), timedelta(days=400)])
def test_job_runs_axis_reads_at_every_range(span):
    """From seconds apart to a year of runs: ticks never collide, seconds-only labels such
    as "55 | 14:54 | 05" never appear, and the legend stays off the points."""
    t0 = pd.Timestamp("2026-03-01 14:53:55")
    n = 30
    starts = [t0 + span * i / (n - 1) for i in range(n)]
    runs = pd.DataFrame({"run_id": range(n), "job": ["cycle", "daily_monitoring"] * (n // 2),
                         "started_at": starts, "status": ["succeeded"] * (n - 1) + ["failed"],
                         "seconds": [5.0 + i for i in range(n)]})
    fig = charts.job_runs_figure(runs)
    assert charts.label_overlaps(fig) == []
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert len(labels) >= 2 and not any(x.isdigit() and len(x) == 2 for x in labels), labels


@pytest.mark.parametrize("days", [1, 2, 7, 31, 120])
def test_orders_per_day_axis_at_every_range(days):
    start = date(2026, 1, 1)
    end = start + timedelta(days=days - 1)
    day_list = [start + timedelta(days=i) for i in range(days)]
    per_day = pd.DataFrame({"day": day_list, "orders": [i % 3 for i in range(days)],
                            "partial": [i in (0, days - 1) for i in range(days)]})
    summary = {"per_day": per_day,
               "status_mix": pd.DataFrame({"status": [40], "orders": [1]}),
               "latency": pd.DataFrame({"percentile": ["p50", "p90", "p95", "p99"],
                                        "hours": [5.0] * 4, "delivered orders": [1] * 4,
                                        "orders at or under": [1] * 4})}
    fig = charts.dashboard_figure(summary, start=start, end=end)
    assert charts.label_overlaps(fig) == []
    a, b, c = fig.axes[:3]
    lo, hi = a.get_xlim()
    import matplotlib.dates as mdates

    assert mdates.num2date(lo).date() < start and mdates.num2date(hi).date() >= end
    assert all(float(t).is_integer() for t in a.get_yticks())
    assert all(float(t).is_integer() for t in b.get_xticks())
    assert c.get_title() == "delivery latency (1 delivered order)"


def test_counts_in_words_and_path_names():
    assert present.plural(1, "order") == "1 order"
    assert present.plural(0, "order") == "0 orders"
    assert present.plural(1204, "order") == "1,204 orders"
    assert path_label("DLV") == "Delivered (DLV)" and path_label("OUTDLV") == "Out for delivery (OUTDLV)"
    assert path_label("ZZZ") == "ZZZ"
    assert all(path_label(c) != c for c in PATH_LABELS)


def test_partial_days_at_both_ends():
    d0 = _epoch(2026, 3, 1)
    assert present.day_coverage(d0, begins=d0 + 600, horizon=d0 + 5 * DAY) == ""
    assert present.day_coverage(d0, begins=d0 + 13 * 3600 + 42 * 60,
                                horizon=None) == "data begins 13:42 UTC"
    assert present.day_coverage(d0, begins=d0 + 2 * DAY, horizon=None) == \
        "before the warehouse's data begins"
    assert present.day_coverage(d0, begins=d0 - DAY, horizon=d0 + 9 * 3600 + 900) == \
        "extracted until 09:15 UTC"
    assert present.day_coverage(d0 + DAY, begins=d0 - DAY, horizon=d0 + 3600) == "not extracted yet"


def test_tables_wrap_long_text_and_colour_status():
    detail = "x" * 300
    t = present.table(pd.DataFrame({"check": ["a", "b"], "status": ["fail", "ok"],
                                    "detail": [detail, "short"]}), status_columns=["status"])
    assert "…" not in t.markup and detail in t.markup  # whole text, wrapped, never cut
    assert "white-space:normal" in t.markup and f"title='{detail}'" in t.markup
    assert "color:#cf222e" in t.markup and "color:#1a7f37" in t.markup


def test_texts_for_visitors_under_voila(monkeypatch):
    monkeypatch.delenv("SERVER_SOFTWARE", raising=False)
    assert present.hint("run `ot demo`", "ask") == "run `ot demo`"
    monkeypatch.setenv("SERVER_SOFTWARE", "voila/0.5.13")
    assert present.for_visitors() and present.hint("run `ot demo`", "ask") == "ask"


def test_download_links_carry_the_csv():
    import base64
    import re

    files = present.csv_files({"orders per day": pd.DataFrame({"a": [1, None]})}, "partner 7")
    (name,) = files
    assert re.fullmatch(r"partner_7_orders_per_day_\d{8}T\d{6}Z\.csv", name)
    assert files[name] == "a\n1.0\n\"\"\n"  # a missing value as empty text
    link = present.download_links(files)
    data = re.search(r"base64,([^']+)'", link.markup).group(1)
    assert base64.b64decode(data).decode() == files[name] and f"download='{name}'" in link.markup
    assert present.download_links({}).text.startswith("Nothing to download yet")


def test_pre_save_hook_keeps_analyst_notebooks_as_committed(tmp_path):
    from ot_core.resources import explore_notebooks_dir

    shipped = explore_notebooks_dir() / "partner_dashboard.ipynb"
    committed = shipped.read_text()
    nb = nbformat.read(shipped, as_version=4)
    ran = copy.deepcopy(nb)
    for c in ran.cells:
        if c.cell_type == "code":
            c.outputs = [nbformat.v4.new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2}})]
            c.execution_count = 3
            c.metadata["execution"] = {"iopub.status.idle": "2026-03-01T00:00:00Z"}
    ran.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    ran.metadata["language_info"] = {"name": "python"}
    model = {"type": "notebook", "content": copy.deepcopy(ran)}
    lab.scrub_outputs(model, "explore/partner_dashboard.ipynb")
    out = tmp_path / "partner_dashboard.ipynb"
    nbformat.write(nbformat.from_dict(model["content"]), out)
    assert out.read_text() == committed  # byte for byte what is committed
    mine = {"type": "notebook", "content": copy.deepcopy(ran)}
    lab.scrub_outputs(mine, "my_analysis.ipynb")  # the analyst's own notebooks keep outputs
    assert mine["content"].cells[2].outputs


def test_lab_and_voila_options(monkeypatch):
    argv = lab.lab_argv(8899)
    assert f"--ContentsManager.pre_save_hook={lab.HOOK}" in argv and "--ServerApp.port=8899" in argv
    assert ("--ServerApp.allow_root=True" in argv) == lab.running_as_root()
    monkeypatch.setattr(lab, "running_as_root", lambda: True)
    assert "--ServerApp.allow_root=True" in lab.lab_argv()
    template = lab.template_root() / "voila" / "templates" / lab.VOILA_TEMPLATE
    assert (template / "conf.json").is_file() and (template / "index.html.j2").is_file()
    env = lab.voila_env({"JUPYTER_PATH": "/x"})
    assert env["JUPYTER_PATH"].split(":") == [str(lab.template_root()), "/x"]
    assert "--template=ot" in lab.voila_argv("a.ipynb", 8866)


def test_voila_template_drops_every_cdn_link():
    """The template's replacements match the lab template's Font Awesome links exactly."""
    import re
    from pathlib import Path

    from jupyter_core.paths import jupyter_path

    pages = [Path(d) / "lab" / "index.html.j2" for d in jupyter_path("voila", "templates")]
    lab_page = next((p for p in pages if p.is_file()), None)
    if lab_page is None:
        pytest.skip("voila's lab template is not installed")
    remote = re.findall(r"<link[^>]+https://[^>]+>", lab_page.read_text())
    mine = (lab.template_root() / "voila/templates/ot/index.html.j2").read_text()
    assert remote and all(link in mine for link in remote)


def test_every_other_chart_reads_clear():
    """Freshness, comparison and exceptions charts: no overlapping labels, no legend over a
    point, whole numbers on count axes."""
    fresh = pd.DataFrame({"table_name": ["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"],
                          "lag_minutes": [3.0, 45.0, 12.0], "verdict": ["OK", "late", "OK"]})
    assert charts.label_overlaps(charts.freshness_figure(fresh, 30.0)) == []
    results = pd.DataFrame({
        "table_name": ["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"] * 6,
        "month": [f"2026-{m:02d}" for m in range(1, 7) for _ in range(3)],
        "mismatch_rate": [0.0, 0.0004, 0.002] * 6,
        "run_at": pd.to_datetime([f"2026-{m + 1:02d}-02" for m in range(1, 7) for _ in range(3)])})
    assert charts.label_overlaps(charts.compare_figure(results, 0.001)) == []
    open_ = pd.DataFrame({
        "exception_id": range(7), "exception_type": ["ARCHIVE_ROUTING_GAP"] * 4 + ["DUPLICATE_KEYS"] * 3,
        "detected_at": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-03-02", "2026-03-05",
                                       "2026-03-02", "2026-03-03", "2026-03-03"])})
    fig = charts.exceptions_figure(open_)
    assert charts.label_overlaps(fig) == []
    assert all(float(t).is_integer() for t in fig.axes[0].get_yticks())

"""What a reader of a daily_monitoring record sees (ot_core/quality/monitor_view.py), and
the figures and cycle notes every record shows."""

from __future__ import annotations

import re
from datetime import datetime
from types import SimpleNamespace

import pandas as pd

from ot_core.figures import FIGURES_MIME, _readable
from ot_core.jobs.cycle_record import loaded_note
from ot_core.quality.monitor import CheckResult, Report
from ot_core.quality.monitor_view import chart_svg, checks_table, html_table, readable

LONG = "rows older than the cutoff 2026-06-04T21:03:27Z of the last lifecycle run " * 3


def _report() -> Report:
    results = [CheckResult("ORDER_MISSING_SPATH", "uni_tracking_info", "fail", 941, LONG,
                           pd.DataFrame({"order_id": [7], "status": [40], "update_time": [1764800000]})),
               CheckResult("DUPLICATE_KEYS", "mart_ecs_order_info", "ok", 0, "keys held more than once")]
    days = pd.date_range("2026-11-05", "2026-12-04", freq="D")
    rows = [(d, "ORDER_MISSING_SPATH", "x", "ok", 0) for d in days[:-1]]
    rows += [(days[-1], "ORDER_MISSING_SPATH", "x", "fail", 941)]
    rows += [(d, f"CHECK_{i}", "x", "ok", 0) for d in days for i in range(8)]
    history = pd.DataFrame(rows, columns=["as_of", "check_name", "subject", "status", "row_count"])
    return Report("2026-12-04T03:00:00Z", results, history)


def test_checks_table_has_no_index_no_cut_text_and_coloured_status():
    html = checks_table(_report())._repr_html_()
    assert LONG.strip() in html and "…" not in html and "..." not in html
    head = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert head == ["check", "subject", "status", "count", "detail"]  # no index column
    assert re.search(r"<td[^>]*color:#cf222e[^>]*>fail</td>", html)
    assert re.search(r"<td[^>]*color:#1a7f37[^>]*>ok</td>", html)


def test_sample_rows_read_as_names_and_utc_times():
    frame = pd.DataFrame({"order_id": [1, 2], "status": [40, 0], "update_time": [1764800000, None],
                          "detected_at": [datetime(2026, 12, 4, 3, 0, 1), None]})
    shown = readable(frame)
    assert list(shown["status"]) == ["Delivered (40)", "Label created (0)"]
    assert list(shown["update_time"]) == ["2025-12-03T22:13:20Z", ""]
    assert list(shown["detected_at"]) == ["2026-12-04T03:00:01Z", ""]
    assert list(shown["order_id"]) == [1, 2]
    assert "Delivered (40)" in html_table(shown)


def test_the_legend_never_covers_the_failing_point():
    fig = _report().chart()
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    plot = ax.get_window_extent()
    assert legend.x0 >= plot.x1  # beside the plot, not on it
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "ORDER_MISSING_SPATH")
    x, y = line.get_transform().transform(line.get_xydata()[-1])  # the 941 point, in pixels
    assert line.get_ydata()[-1] == 941 and plot.contains(x, y) and not legend.contains(x, y)
    ticks = [t for t in ax.get_yticks() if 0 <= t <= ax.get_ylim()[1]]
    assert all(float(t).is_integer() for t in ticks)  # counts of rows: whole numbers
    svg = chart_svg(_report())
    assert svg.lstrip().startswith("<?xml") and "failing rows per check" in svg


def test_figures_are_folded_with_utc_times_and_the_payload_unchanged(monkeypatch):
    shown: list = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    from ot_core import figures

    figures.show_figures({"as_of": "2026-12-04T03:00:00Z", "t": {"upper": 1796417714, "rows": 3}})
    out = shown[0]
    assert out[FIGURES_MIME]["t"]["upper"] == 1796417714  # what the runner stores
    assert out["text/html"].startswith("<details>") and "2026-12-04T" in out["text/html"]
    assert "1796417714" not in out["text/html"] and "{" not in out["text/plain"]
    assert _readable({"rows_loaded": 1796417714}) == {"rows_loaded": 1796417714}  # not a time


def test_cycle_record_explains_rows_extracted_but_not_loaded():
    def table(extracted, loaded):
        return SimpleNamespace(rows_extracted=extracted, rows_loaded=loaded)

    same = SimpleNamespace(tables={"ecs_order_info": table(5, 5)})
    assert loaded_note(same) is None
    fewer = SimpleNamespace(tables={"ecs_order_info": table(5, 5), "uni_tracking_info": table(3, 0)})
    note = loaded_note(fewer)
    assert note and "`uni_tracking_info` 3 → 0" in note and "ecs_order_info" not in note
    assert "unchanged" in note and "Nothing was lost" in note

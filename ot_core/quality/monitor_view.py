"""What the daily_monitoring record shows a reader: the checks as an HTML table (no index
column, details whole, pass/fail coloured), failing checks' sample rows with status names
and UTC times instead of codes and epoch seconds, and the 30-day chart as SVG with its
legend beside the plot, where it cannot cover a point.

The record is the audit evidence of the morning's checks, read in JupyterLab or as its HTML
twin: every value must read as it is meant, with nothing cut off.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

import pandas as pd

from ot_core.contract import CONTRACTS, status_label
from ot_core.timeutil import from_epoch, iso

if TYPE_CHECKING:
    from ot_core.quality.monitor import Report

# epoch-second columns: the contract's, and the control tables' clocks
EPOCH_COLUMNS = {c.name for t in CONTRACTS.values() for c in t.columns if c.epoch} | {
    "watermark", "as_of", "lower_bound", "upper_bound"}
COLOURS = {"ok": ("#1a7f37", "#dafbe1"), "fail": ("#cf222e", "#ffebe9")}
_STYLE = ("border-collapse:collapse;margin:4px 0;font-size:13px",
          "border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top")
WRAPPED = {"detail", "notes", "sample"}  # long text wraps; names, codes and numbers never


def _td(column: str, extra: str = "") -> str:
    wrap = "white-space:normal;overflow-wrap:anywhere" if column in WRAPPED else "white-space:nowrap"
    return f'<td style="{_STYLE[1]};{wrap}{extra}">'



def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for people: a status code as its name, epoch seconds as UTC ISO times,
    timestamps as ISO times, missing values as blanks."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if col == "status" and pd.api.types.is_numeric_dtype(values):
            out[col] = [status_label(v) if pd.notna(v) else "" for v in values]
        elif col in EPOCH_COLUMNS and pd.api.types.is_numeric_dtype(values):
            out[col] = [iso(from_epoch(int(v))) if pd.notna(v) else "" for v in values]
        elif pd.api.types.is_datetime64_any_dtype(values):
            out[col] = [pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ") if pd.notna(v) else ""
                        for v in values]
    return out


def _cell(value: Any, column: str) -> str:
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    if column == "status" and text in COLOURS:
        fg, bg = COLOURS[text]
        return f"{_td(column, f';color:{fg};background:{bg};font-weight:bold')}{escape(text)}</td>"
    return f"{_td(column)}{escape(text)}</td>"


def html_table(frame: pd.DataFrame) -> str:
    """A plain HTML table of ``frame``: no index column, every cell whole (wrapped, never
    cut with "…"), a ``status`` of ok/fail coloured green/red."""
    head = "".join(f'<th style="{_STYLE[1]};background:#f6f8fa;white-space:nowrap">'
                   f"{escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(_cell(v, str(c)) for c, v in zip(frame.columns, row, strict=True))
                   + "</tr>" for row in frame.itertuples(index=False, name=None))
    return f'<table style="{_STYLE[0]}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Html:
    """An object a notebook displays as ``html`` (text form: ``text``)."""

    def __init__(self, html: str, text: str):
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def checks_table(report: Report) -> Html:
    summary = report.summary()
    return Html(html_table(summary), summary.to_string(index=False, max_colwidth=None))


def sample_table(frame: pd.DataFrame) -> Html:
    shown = readable(frame)
    return Html(html_table(shown), shown.to_string(index=False, max_colwidth=None))


def chart_svg(report: Report) -> str:
    """The 30-day chart as SVG text (sharp at any zoom, its labels searchable)."""
    from io import StringIO

    out = StringIO()
    report.chart().savefig(out, format="svg", bbox_inches="tight")
    return out.getvalue()


def show(report: Report) -> None:
    """The notebook's display: the checks, each failing check's sample, the 30-day chart
    and the figures the runner records."""
    from IPython.display import SVG, Markdown, display

    from ot_core.figures import show_figures

    failed = len(report.failed)
    display(Markdown(f"**Checks as of {report.as_of}**: {len(report.results) - failed} ok, "
                     f"{failed} failed" + (" (samples below)" if failed else "")))
    display(checks_table(report))
    for r in report.failed:
        display(Markdown(f"**{r.check}** on `{r.subject}`: {r.count} — {r.detail}"))
        if not r.sample.empty:
            display(sample_table(r.sample))
    display(SVG(data=chart_svg(report)),
            metadata={"image/svg+xml": {"alt": "failing rows per check per day, last 30 days"}})
    show_figures(report.figures())

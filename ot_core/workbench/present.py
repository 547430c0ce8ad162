"""How the workbench shows things: one-line messages, readable tables, chart images, CSV files.

Everything an analyst sees goes through here, so a message is never a quoted Python string,
a table never shows raw epochs, NaN or clipped columns, and whatever is shown can be written
to CSV exactly as shown.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from io import BytesIO

import pandas as pd

TIME_FMT = "%Y-%m-%d %H:%M:%S"


class Message:
    """One line of Markdown: rendered as text in a notebook, its plain ``text`` for tests."""

    def __init__(self, text: str, level: str = "info"):
        self.text = text
        self.level = level  # info | warning | problem

    def _repr_markdown_(self) -> str:
        mark = {"warning": "⚠️ ", "problem": "⛔ "}.get(self.level, "")
        return mark + self.text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


class Html:
    """A ready HTML fragment (a table, a link) that also reads as text outside a notebook."""

    def __init__(self, markup: str, text: str = ""):
        self.markup = markup
        self.text = text or re.sub(r"<[^>]+>", "", markup)

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


def for_visitors() -> bool:
    """The view is served by Voilà: its visitors see no code and run no commands."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("voila/")


def hint(for_users: str, for_visitors_text: str) -> str:
    """What to do next, in the words of who reads it: a command for a notebook user, a
    plain sentence for a Voilà visitor."""
    return for_visitors_text if for_visitors() else for_users


# -- values -----------------------------------------------------------------------------------
def utc_text(value) -> str:
    """A datetime, pandas timestamp or epoch seconds as ``YYYY-MM-DD HH:MM:SS`` (UTC); '' if missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(int(value), UTC)
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return ""
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.strftime(TIME_FMT)


def duration_text(seconds) -> str:
    """``42.0 s``, ``3 min 05 s``, ``2 h 07 min``, ``3 d 4 h``; '—' when there is none."""
    if seconds is None or pd.isna(seconds):
        return "—"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    s = int(round(s))
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400:,} d {s % 86400 // 3600} h"


def count_text(n) -> str:
    return f"{int(n):,}"


def hours_text(h) -> str:
    return "—" if h is None or pd.isna(h) else f"{float(h):,.1f}"


def plural(n, word: str, many: str | None = None) -> str:
    """``1 order``, ``2 orders``, ``1,204 orders`` (never "1 orders")."""
    n = int(n)
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


PARTIAL_START = 3600  # a day whose data begins more than an hour in is partial at its start


def day_coverage(start: int, begins: int | None, horizon: int | None) -> str:
    """'' for a day the warehouse holds whole; else why it is partial (its data begins
    later in the day, or it is extracted only up to a time, or not yet at all)."""
    if horizon is not None and start >= horizon:
        return "not extracted yet"
    if horizon is not None and start + 86400 > horizon:
        return f"extracted until {datetime.fromtimestamp(horizon, UTC):%H:%M} UTC"
    if begins is not None and int(begins) >= start + 86400:
        return "before the warehouse's data begins"
    if begins is not None and int(begins) > start + PARTIAL_START:
        return f"data begins {datetime.fromtimestamp(int(begins), UTC):%H:%M} UTC"
    return ""


# -- tables -----------------------------------------------------------------------------------
WRAP_AT = 24  # characters: longer cells wrap (and keep their full text as a tooltip)
# a status cell's colour: green for what passed, red for what failed, amber in between
STATUS_COLOURS = {"ok": "#1a7f37", "OK": "#1a7f37", "succeeded": "#1a7f37", "pass": "#1a7f37",
                  "fail": "#cf222e", "failed": "#cf222e", "late": "#cf222e",
                  "warn": "#9a6700", "skipped": "#9a6700", "running": "#9a6700"}


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as empty text, so no NaN/None/NaT reaches the screen or a CSV."""
    out = frame.copy()
    for c in out.columns:
        if out[c].isna().any():
            out[c] = out[c].astype(object).where(out[c].notna(), "")
    return out


def _cell(col: str, value, raw: set[str], status: set[str]) -> str:
    text = str(value)
    shown = text if col in raw else html.escape(text)
    style = "text-align:left;vertical-align:top;"
    if col in status and text in STATUS_COLOURS:
        style += f"color:{STATUS_COLOURS[text]};font-weight:600;"
        shown = f"{'✔' if STATUS_COLOURS[text] == '#1a7f37' else '✖' if STATUS_COLOURS[text] == '#cf222e' else '●'} {shown}"
    if col not in raw and len(text) > WRAP_AT:
        style += "white-space:normal;overflow-wrap:anywhere;max-width:60ch;"
        return f"<td style='{style}' title='{html.escape(text, quote=True)}'>{shown}</td>"
    return f"<td style='{style}white-space:nowrap'>{shown}</td>"


def table(frame: pd.DataFrame, *, title: str = "", html_columns: Iterable[str] = (),
          empty: str = "nothing to show", status_columns: Iterable[str] = ()) -> Html | Message:
    """An HTML table, no index: long text wraps (full text as a tooltip), never cut with
    "…"; wide tables scroll; ``status_columns`` are coloured pass/fail.

    Cells are escaped except ``html_columns`` (links built here)."""
    if frame is None or frame.empty:
        return Message(f"{title}: {empty}" if title else empty)
    raw, status = set(html_columns), set(status_columns)
    shown = tidy(frame)
    head = "".join(f"<th style='text-align:left'>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = ["<tr>" + "".join(_cell(col, v, raw, status)
                             for col, v in zip(shown.columns, rec, strict=True)) + "</tr>"
            for rec in shown.itertuples(index=False)]
    caption = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    markup = (f"{caption}<div class='ot-table' style='overflow-x:auto;max-width:100%'>"
              f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    return Html(markup, f"{title}\n{shown.to_string(index=False)}")


def link(href: str, text: str, title: str = "") -> str:
    hover = f" title='{html.escape(title, quote=True)}'" if title else ""
    return (f"<a href='{html.escape(href, quote=True)}'{hover} target='_blank'>"
            f"{html.escape(text)}</a>")


def image(fig):
    """A matplotlib figure as a PNG image output (no pyplot state, no backend needed)."""
    from IPython.display import Image

    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return Image(data=buf.getvalue(), format="png")


# -- export -----------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "view"


def csv_files(frames: dict[str, pd.DataFrame], prefix: str) -> dict[str, str]:
    """``{file name: CSV text}`` of each shown frame, exactly as shown (UTC-stamped names)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return {f"{_slug(prefix)}_{_slug(name)}_{stamp}.csv": tidy(frame).to_csv(index=False)
            for name, frame in frames.items() if frame is not None}


def download_links(files: dict[str, str]) -> Html | Message:
    """Links that download each CSV in the browser (``data:`` URIs with ``download``): the
    same in JupyterLab and Voilà, and nothing is written on the server or into the checkout."""
    if not files:
        return Message("Nothing to download yet: pick something to show first.")
    links = []
    for name, text in files.items():
        data = base64.b64encode(text.encode("utf-8")).decode("ascii")
        links.append(f"<a class='ot-download' download='{html.escape(name, quote=True)}' "
                     f"href='data:text/csv;charset=utf-8;base64,{data}'>{html.escape(name)}</a>")
    n = plural(len(files), "CSV file")
    return Html(f"Download {n} (what is shown now): " + ", ".join(links),
                f"Download {n} (what is shown now): " + ", ".join(files))

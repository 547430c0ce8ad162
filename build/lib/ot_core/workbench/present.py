"""How the workbench shows things: one-line messages, readable tables, chart images, CSV files.

Everything an analyst sees goes through here, so a message is never a quoted Python string,
a table never shows raw epochs, NaN or clipped columns, and whatever is shown can be written
to CSV exactly as shown.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

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


# -- tables -----------------------------------------------------------------------------------
def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as empty text, so no NaN/None/NaT reaches the screen or a CSV."""
    out = frame.copy()
    for c in out.columns:
        if out[c].isna().any():
            out[c] = out[c].astype(object).where(out[c].notna(), "")
    return out


def table(frame: pd.DataFrame, *, title: str = "", html_columns: Iterable[str] = (),
          empty: str = "nothing to show") -> Html | Message:
    """A scrollable HTML table (wide tables scroll instead of being clipped), no index.

    Cells are escaped except ``html_columns`` (links built here)."""
    if frame is None or frame.empty:
        return Message(f"{title}: {empty}" if title else empty)
    raw = set(html_columns)
    shown = tidy(frame)
    head = "".join(f"<th style='text-align:left'>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for rec in shown.itertuples(index=False):
        cells = []
        for col, v in zip(shown.columns, rec, strict=True):
            text = str(v) if col in raw else html.escape(str(v))
            cells.append(f"<td style='text-align:left;white-space:nowrap'>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
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


def export_csv(frames: dict[str, pd.DataFrame], directory: Path, prefix: str) -> list[Path]:
    """Write each shown frame to ``<prefix>_<name>_<UTC stamp>.csv`` in ``directory``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, frame in frames.items():
        if frame is None:
            continue
        path = directory / f"{_slug(prefix)}_{_slug(name)}_{stamp}.csv"
        tidy(frame).to_csv(path, index=False)
        out.append(path)
    return out


def export_note(paths: list[Path], base: Path) -> Html | Message:
    """Links to the written files, relative to the notebook's folder (JupyterLab opens them)."""
    if not paths:
        return Message("nothing to export yet")
    links = []
    for p in paths:
        try:
            href = str(p.relative_to(base))
        except ValueError:
            href = p.as_uri()
        links.append(link(href, p.name))
    return Html(f"exported {len(paths)} CSV file(s): " + ", ".join(links),
                f"exported {len(paths)} CSV file(s): " + ", ".join(str(p) for p in paths))

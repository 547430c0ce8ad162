"""What the cycle job's executed notebook shows an auditor: one row per table with readable
UTC bounds, the lifecycle's figures, and a bar chart of rows per table.

The chart is plain SVG written here rather than matplotlib: the cycle runs every 15 minutes
and importing and rendering with matplotlib would cost more than many cycles take, and the
core install does not carry it. SVG also stays sharp and self-contained in the HTML copy.
The two tables are ``Grid``s rendered as plain HTML for the same reason: pandas would add
about 0.4 s to every run's kernel for two tables of a few rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from ot_core.timeutil import from_epoch, iso

STAGES = ("extracted", "loaded", "merged", "archived")
COLOURS = ("#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c")


@dataclass(frozen=True)
class Grid:
    """A small labelled table (row label -> values per column) the notebook shows as HTML."""

    index_name: str
    columns: tuple[str, ...]
    rows: dict[str, tuple[Any, ...]]

    @property
    def index(self) -> list[str]:
        return list(self.rows)

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [values[i] for values in self.rows.values()]

    def cell(self, label: str, column: str) -> Any:
        return self.rows[label][self.columns.index(column)]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in (self.index_name, *self.columns))
        body = "".join(
            f"<tr><th>{escape(label)}</th>" + "".join(f"<td>{escape(str(v))}</td>" for v in values)
            + "</tr>" for label, values in self.rows.items())
        return f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        cells = [[self.index_name, *self.columns]] + [[k, *map(str, v)] for k, v in self.rows.items()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _utc(epoch: int | None) -> str:
    return "—" if epoch is None else iso(from_epoch(int(epoch))).replace("T", " ").replace("Z", " UTC")


TABLE_COLUMNS = ("window from", "window to", "extracted", "loaded", "merged", "archived",
                 "raw trimmed", "recovered batches", "batch", "seconds")


def table_frame(result: Any) -> Grid:
    """Rows per table and stage, the window read (UTC) and the seconds each table took."""
    life = (result.lifecycle or {}).get("tables", {})
    rows = {
        name: (_utc(r.lower), _utc(r.upper), r.rows_extracted, r.rows_loaded, r.rows_merged,
               int(life.get(name, {}).get("archived", 0)), r.raw_trimmed, r.recovered_batches,
               "—" if r.batch_id is None else str(r.batch_id), round(float(r.seconds), 2))
        for name, r in result.tables.items()}
    return Grid("table", TABLE_COLUMNS, rows)


def lifecycle_frame(result: Any) -> Grid:
    """The lifecycle's totals as label/value rows (or why there are none)."""
    f = result.lifecycle
    if not f:
        return Grid("lifecycle", ("value",), {"lifecycle": ("disabled (lifecycle.enabled is false)",)})
    items = {
        "cutoff (rows older are archived)": f.get("cutoff"),
        "rows archived": f.get("rows_archived", 0),
        "rows trimmed from the marts": f.get("rows_trimmed", 0),
        "rows reactivated": f.get("rows_reactivated", 0),
        "routing-gap exceptions opened": f.get("exceptions_opened", 0),
        "exceptions resolved": f.get("exceptions_resolved", 0),
        "history tables created": ", ".join(f.get("history_tables_created") or []) or "none",
        "warnings": "; ".join(f.get("warnings") or []) or "none",
        "seconds": f.get("seconds", 0),
    }
    return Grid("lifecycle", ("value",), {k: (str(v),) for k, v in items.items()})


def _readable(instant: str) -> str:
    return instant.replace("T", " ").replace("Z", " UTC")


def headline(result: Any) -> str:
    merged = sum(r.rows_merged for r in result.tables.values())
    archived = (result.lifecycle or {}).get("rows_archived", 0)
    return (f"**Cycle as of {_readable(result.as_of)}**: "
            f"{merged:,} rows merged into {len(result.tables)} marts, {archived:,} archived, "
            f"in {result.seconds:.2f} s")


def loaded_note(result: Any) -> str | None:
    """Why a table loaded fewer rows than it extracted (e.g. "extracted 3, loaded 0"):
    each window starts ``lookback_seconds`` before the last one ended (a full refresh reads
    everything), and re-read rows the mart already holds unchanged are dropped at landing
    (docs/cycle.md#extract-window, #boundary-seconds)."""
    fewer = [f"`{name}` {r.rows_extracted:,} → {r.rows_loaded:,}" for name, r in result.tables.items()
             if r.rows_loaded < r.rows_extracted]
    if not fewer:
        return None
    return ("*Extracted but not loaded* (" + ", ".join(fewer) + "): each window re-reads the "
            "last minutes before the previous one ended, to catch rows committed late (a full "
            "refresh re-reads every row); re-read rows the mart already holds unchanged are "
            "dropped at landing, so nothing is merged twice. Nothing was lost.")


def _ticks(top: float) -> list[float]:
    """About five round steps from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 5
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = int(-(-top // step))
    return [i * step for i in range(n + 1)]


def bar_chart_svg(categories: list[str], series: dict[str, list[float]], *, title: str,
                  xlabel: str, ylabel: str, width: int = 640, height: int = 300) -> str:
    """Grouped bars: one group per category, one bar per series, labelled axes and legend."""
    left, right, top, bottom = 64, 150, 34, 52
    pw, ph = width - left - right, height - top - bottom
    ticks = _ticks(max([v for vals in series.values() for v in vals] + [0]))
    ymax = ticks[-1]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<title>{escape(title)}</title>',
           f'<text x="{left + pw / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for t in ticks:
        y = top + ph - ph * t / ymax
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t:,.0f}</text>')
    group = pw / max(len(categories), 1)
    bar = group * 0.8 / max(len(series), 1)
    for ci, cat in enumerate(categories):
        x0 = left + ci * group + group * 0.1
        for si, (name, vals) in enumerate(series.items()):
            v = float(vals[ci])
            h = ph * v / ymax
            out.append(f'<rect x="{x0 + si * bar:.1f}" y="{top + ph - h:.1f}" width="{bar * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{COLOURS[si % len(COLOURS)]}">'
                       f'<title>{escape(cat)} {escape(name)}: {v:,.0f}</title></rect>')
        out.append(f'<text x="{x0 + group * 0.4:.1f}" y="{top + ph + 16}" text-anchor="middle">'
                   f'{escape(cat)}</text>')
    out += [f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>',
            f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#333"/>',
            f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">{escape(xlabel)}</text>',
            f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle">'
            f'{escape(ylabel)}</text>']
    for si, name in enumerate(series):
        y = top + 8 + si * 18
        out.append(f'<rect x="{left + pw + 16}" y="{y - 9}" width="12" height="12" '
                   f'fill="{COLOURS[si % len(COLOURS)]}"/>')
        out.append(f'<text x="{left + pw + 34}" y="{y + 1}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def chart_svg(result: Any) -> str:
    """Rows per table and stage of this cycle."""
    frame = table_frame(result)
    return bar_chart_svg(frame.index, {s: frame.column(s) for s in STAGES},
                         title=f"rows per table, cycle as of {_readable(result.as_of)}",
                         xlabel="table", ylabel="rows")


def show_cycle(result: Any) -> None:
    """The cycle notebook's display: headline, table per table, lifecycle, chart, figures."""
    from IPython.display import SVG, Markdown, display

    from ot_core.figures import show_figures

    if getattr(result, "covered_by", None):
        display(Markdown(f"**Nothing to do:** a cycle already read up to {result.covered_by}, "
                         f"past this scheduled slot ({result.as_of}); the next slot reads on "
                         "from there."))
        show_figures({"covered_by": result.covered_by})
        return
    display(Markdown(headline(result)))
    display(table_frame(result))
    note = loaded_note(result)
    if note:
        display(Markdown(note))
    display(lifecycle_frame(result))
    display(SVG(data=chart_svg(result)))
    show_figures(result.rows())

"""The workbench's charts (matplotlib figures, no pyplot state): labelled axes, readable
date ticks, sensible limits for a single point, status names instead of codes."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from ot_core.contract import path_label, status_label
from ot_core.workbench.present import plural

PARTIAL = "partial day (the warehouse does not hold it whole)"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


# tick labels at every zoom: days as "04 Mar", times as "14:05" (seconds only when the
# span is that short), the year and month once in the offset at the axis end
FORMATS = ["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%H:%M:%S"]
ZERO_FORMATS = ["", "%Y", "%d %b", "%d %b", "%H:%M", "%H:%M"]
OFFSET_FORMATS = ["", "%Y", "%b %Y", "%d %b %Y", "%d %b %Y", "%d %b %Y %H:%M"]
MIN_SPAN = timedelta(minutes=20)  # a time axis is never narrower (no seconds-apart ticks)


def _date_axis(ax, values, daily: bool = False, lo=None, hi=None) -> None:
    """Readable, non-overlapping date ticks at any range (matplotlib's AutoDateLocator and
    ConciseDateFormatter). Daily bars get whole-day ticks and the axis spans ``lo``..``hi``
    (the days asked for, even those without bars); a short or single-point time axis is
    widened to ``MIN_SPAN``."""
    import matplotlib.dates as mdates

    vals = pd.to_datetime(pd.Series(list(values)))
    if daily:
        first = pd.Timestamp(lo) if lo is not None else (vals.min() if len(vals) else None)
        last = pd.Timestamp(hi) if hi is not None else (vals.max() if len(vals) else None)
        days = (last - first).days + 1 if first is not None and last is not None else 1
        loc = (mdates.DayLocator(interval=1) if days <= 8 else
               mdates.AutoDateLocator(minticks=3, maxticks=8))
        if first is not None and last is not None:
            ax.set_xlim(first - timedelta(hours=12), last + timedelta(hours=12))
    else:
        loc = mdates.AutoDateLocator(minticks=3, maxticks=7)
        if len(vals) and vals.max() - vals.min() < MIN_SPAN:
            mid = vals.min() + (vals.max() - vals.min()) / 2
            ax.set_xlim(mid - MIN_SPAN / 2, mid + MIN_SPAN / 2)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
        loc, formats=FORMATS, zero_formats=ZERO_FORMATS, offset_formats=OFFSET_FORMATS))
    ax.tick_params(axis="x", labelsize=9)


def _counts(axis) -> None:
    """Counts are whole numbers: no 0.5-order ticks."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _legend_outside(ax, **kw) -> None:
    """A legend right of the axes: it never covers a point."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                  **kw)


def label_overlaps(fig) -> list[str]:
    """Pairs of tick labels (and legends over plotted points) that overlap once drawn:
    what an analyst could not read. Empty when every label stands clear."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    found = []
    for ax in fig.axes:
        for which, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels
                     if t.get_visible() and t.get_text().strip()]
            for i, (ta, a) in enumerate(boxes):
                for tb, b in boxes[i + 1:]:
                    if a.overlaps(b) and a.intersection(a, b) is not None:
                        inter = a.intersection(a, b)
                        if inter.width > 0.5 and inter.height > 0.5:
                            found.append(f"{ax.get_title() or 'axes'}: {which} labels "
                                         f"{ta!r} and {tb!r} overlap")
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            points = [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                      if len(c.get_offsets())]
            points += [ln.get_transform().transform(ln.get_xydata()) for ln in ax.get_lines()
                       if len(ln.get_xydata()) and ln.get_marker() not in (None, "None", "", " ")]
            if any(box.contains(x, y) for xy in points for x, y in xy):
                found.append(f"{ax.get_title() or 'axes'}: the legend hides a point")
    return found


def _naive(series: pd.Series) -> pd.Series:
    s = pd.to_datetime(series)
    return s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s


# -- order lookup -----------------------------------------------------------------------------
def timeline_figure(view):
    """One row per path event (newest at the bottom), labelled on the y axis, so labels
    never overlap whatever the spacing in time."""
    t = view.timeline
    n = len(t)
    fig = _figure(10, max(2.4, 0.42 * n + 1.4))
    ax = fig.subplots()
    if t.empty:
        ax.text(0.5, 0.5, "no path events", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        x = _naive(t["pathTime_at"])
        ys = list(range(n))
        ax.plot(x, ys, color="0.7", zorder=1)
        ax.scatter(x, ys, color="tab:blue", zorder=2)
        labels = [f"{path_label(code)} · {loc}" if isinstance(loc, str) and loc else path_label(code)
                  for code, loc in zip(t["path_code"], t.get("path_location", [""] * n), strict=True)]
        ax.set_yticks(ys, labels, fontsize=9)
        ax.set_ylim(n - 0.5, -0.5)
        _date_axis(ax, x)
        ax.set_xlabel("event time (UTC)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"order {view.order_id}: path events")
    return fig


# -- partner dashboard ------------------------------------------------------------------------
def dashboard_figure(summary: dict[str, pd.DataFrame], title: str = "", start=None, end=None):
    """Orders per day over the whole range asked for (partial days hatched), current status
    mix, latency percentiles each with the number of delivered orders behind it."""
    from matplotlib.patches import Patch

    fig = _figure(13, 3.9)
    a, b, c = fig.subplots(1, 3, width_ratios=[1.3, 1.2, 0.9])
    d = summary["per_day"]
    if d.empty or int(d["orders"].sum()) == 0 and start is None:
        a.text(0.5, 0.5, "no orders in this range", ha="center", va="center", transform=a.transAxes)
    if not d.empty:
        days = pd.to_datetime(pd.Series(d["day"]).astype(str))
        partial = d["partial"].astype(bool).tolist()
        bars = a.bar(days, d["orders"], width=0.8,
                     color=["#9ecae1" if p else "tab:blue" for p in partial],
                     edgecolor=["tab:blue" if p else "none" for p in partial])
        for bar, p in zip(bars, partial, strict=True):
            if p:
                bar.set_hatch("//")
        if any(partial):
            a.legend(handles=[Patch(facecolor="#9ecae1", edgecolor="tab:blue", hatch="//",
                                    label=PARTIAL)], fontsize=8, loc="upper center",
                     bbox_to_anchor=(0.5, -0.2), borderaxespad=0, frameon=False)
        a.set_ylim(0, max(1, int(d["orders"].max())) * 1.2)
    _date_axis(a, pd.to_datetime(pd.Series(d["day"]).astype(str)) if len(d) else [],
               daily=True, lo=start, hi=end)
    _counts(a.yaxis)
    a.set_title("orders per day")
    a.set_xlabel("order created (UTC day)")
    a.set_ylabel("orders")

    m = summary["status_mix"]
    if m.empty:
        b.text(0.5, 0.5, "no tracking status yet", ha="center", va="center", transform=b.transAxes)
    else:
        names = [status_label(s) for s in m["status"]]
        b.barh(names, m["orders"], color="tab:green", height=0.6)
        b.set_ylim(max(len(m), 4) - 0.5, -0.5)  # a lone status is not one fat bar
        b.set_xlim(0, max(m["orders"]) * 1.3)
        for y, v in enumerate(m["orders"]):
            b.text(v, y, f" {int(v):,}", va="center", fontsize=8)
        b.tick_params(axis="y", labelsize=9)
        _counts(b.xaxis)
    b.set_title("current status")
    b.set_xlabel("orders")

    lat = summary["latency"]
    hours = lat["hours"]
    n = int(lat["delivered orders"].iloc[0]) if "delivered orders" in lat and len(lat) else 0
    if hours.isna().all():
        c.text(0.5, 0.5, "no delivered orders\nin this range", ha="center", va="center",
               transform=c.transAxes)
        c.set_xticks([])
        c.set_yticks([])
    else:
        c.bar(lat["percentile"], hours.fillna(0), color="tab:orange")
        c.set_ylim(0, float(hours.max()) * 1.3 or 1)
        for x, v in zip(lat["percentile"], hours, strict=True):
            c.text(x, v, f"{v:,.1f} h", ha="center", va="bottom", fontsize=8)
    c.set_title(f"delivery latency ({plural(n, 'delivered order')})")
    c.set_xlabel("percentile (created → delivered)")
    c.set_ylabel("hours")
    if title:
        fig.suptitle(title)
    return fig


# -- pipeline health --------------------------------------------------------------------------
def job_runs_figure(runs: pd.DataFrame):
    """Duration per run and job; failed runs marked; skipped runs are not durations and are
    only counted in the legend."""
    fig = _figure(10, 3.4)
    ax = fig.subplots()
    timed = runs[runs["seconds"].notna()].sort_values("started_at")
    for job, g in timed.groupby("job"):
        ax.plot(_naive(g["started_at"]), g["seconds"], marker="o", label=str(job))
    failed = timed[timed["status"] == "failed"]
    if len(failed):
        ax.scatter(_naive(failed["started_at"]), failed["seconds"], marker="X", s=90,
                   color="tab:red", zorder=3, label=f"failed ({len(failed)})")
    skipped = int((runs["status"] == "skipped").sum())
    if skipped:
        ax.plot([], [], " ", label=f"{skipped} skipped (not plotted)")
    if timed.empty:
        ax.text(0.5, 0.5, "no finished runs to plot", ha="center", va="center",
                transform=ax.transAxes)
    else:
        _date_axis(ax, _naive(timed["started_at"]))
        ax.set_ylim(0, float(timed["seconds"].max()) * 1.2 or 1)
    _legend_outside(ax)
    ax.set_xlabel("started (UTC)")
    ax.set_ylabel("duration (s)")
    ax.set_title("job run durations")
    return fig


def freshness_figure(fresh: pd.DataFrame, limit_minutes: float):
    """Lag per table against the late limit (two cycle intervals)."""
    fig = _figure(8, 0.5 * max(len(fresh), 1) + 1.6)
    ax = fig.subplots()
    late = fresh["verdict"] == "late"
    ax.barh(fresh["table_name"], fresh["lag_minutes"],
            color=["tab:red" if x else "tab:green" for x in late])
    ax.axvline(limit_minutes, color="0.3", linestyle="--",
               label=f"late above {limit_minutes:,.0f} min (2 cycle intervals)")
    ax.set_xlim(0, max(float(fresh["lag_minutes"].max() or 0), limit_minutes) * 1.2)
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), borderaxespad=0,
              frameon=False)
    ax.set_xlabel("behind now (minutes)")
    ax.set_title("freshness per table")
    return fig


def compare_figure(results: pd.DataFrame, max_rate: float | None = None):
    """Mismatch rate per table and month (the latest run of each), with the limit the
    monthly job fails above as a labelled line; tables are told apart by marker and a small
    offset, so three tables at 0 do not hide each other."""
    from matplotlib.ticker import PercentFormatter

    fig = _figure(9, 3)
    ax = fig.subplots()
    monthly = results.dropna(subset=["month"]) if len(results) else results
    if monthly.empty:
        ax.text(0.5, 0.5, "no monthly comparison recorded yet", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    else:
        latest = monthly.sort_values("run_at").groupby(["table_name", "month"]).tail(1)
        months = sorted(latest["month"].astype(str).unique())
        where = {m: i for i, m in enumerate(months)}
        top = float(latest["mismatch_rate"].astype(float).max())
        groups = list(latest.groupby("table_name"))
        for i, (table, g) in enumerate(groups):
            g = g.sort_values("month")
            shift = (i - (len(groups) - 1) / 2) * 0.08
            ax.plot([where[str(m)] + shift for m in g["month"]], g["mismatch_rate"].astype(float),
                    marker=_MARKERS[i % len(_MARKERS)], linestyle="-", label=str(table))
        if max_rate is not None:
            ax.axhline(max_rate, color="tab:red", linestyle="--", linewidth=1,
                       label=f"limit {max_rate:.2%} (compare.max_mismatch_rate)")
            top = max(top, max_rate)
        ax.set_xticks(range(len(months)), months)
        ax.set_xlim(-0.5, len(months) - 0.5)
        ax.set_ylim(0, top * 1.3 if top > 0 else 0.001)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
        _legend_outside(ax)
        ax.set_xlabel("month")
        ax.set_ylabel("mismatch rate")
    ax.set_title("comparison with the source, per table and month")
    return fig


_MARKERS = ("o", "s", "^", "D")


# -- exceptions -------------------------------------------------------------------------------
def exceptions_figure(open_: pd.DataFrame):
    """Open exceptions per type and detection day."""
    fig = _figure(8, 2.8)
    ax = fig.subplots()
    if open_.empty:
        ax.text(0.5, 0.5, "no open exceptions", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        days = pd.to_datetime(open_["detected_at"]).dt.floor("D")
        pivot = open_.assign(day=days).pivot_table(index="day", columns="exception_type",
                                                   values="exception_id", aggfunc="count").fillna(0)
        bottom = pd.Series(0.0, index=pivot.index)
        for col in pivot.columns:
            ax.bar(pivot.index, pivot[col], width=0.8, bottom=bottom, label=str(col))
            bottom = bottom + pivot[col]
        _date_axis(ax, pivot.index, daily=True)
        ax.set_ylim(0, float(bottom.max()) * 1.25)
        _counts(ax.yaxis)
        _legend_outside(ax)
        ax.set_xlabel("detected (UTC day)")
        ax.set_ylabel("open exceptions")
    ax.set_title("open exceptions by type")
    return fig

"""The workbench's charts (matplotlib figures, no pyplot state): labelled axes, readable
date ticks, sensible limits for a single point, status names instead of codes."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from ot_core.contract import status_label

PARTIAL = "partial day (not fully extracted yet)"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _date_axis(ax, values, daily: bool = False, pad: timedelta = timedelta(hours=1)) -> None:
    """Readable date ticks (one label per day for daily bars); a lone point gets ``pad``
    either side instead of a zero-width axis."""
    import matplotlib.dates as mdates

    vals = pd.to_datetime(pd.Series(list(values)))
    if daily:
        span = (vals.max() - vals.min()).days + 1 if len(vals) else 1
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, span // 8)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
        if len(vals):
            ax.set_xlim(vals.min() - timedelta(hours=18), vals.max() + timedelta(hours=18))
    else:
        loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
        if len(vals) and vals.min() == vals.max():
            ax.set_xlim(vals.min() - pad, vals.max() + pad)
    ax.tick_params(axis="x", labelsize=9)


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
        labels = [f"{code} · {loc}" if isinstance(loc, str) and loc else str(code)
                  for code, loc in zip(t["path_code"], t.get("path_location", [""] * n), strict=True)]
        ax.set_yticks(ys, labels, fontsize=9)
        ax.set_ylim(n - 0.5, -0.5)
        _date_axis(ax, x)
        ax.set_xlabel("event time (UTC)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"order {view.order_id}: path events")
    return fig


# -- partner dashboard ------------------------------------------------------------------------
def dashboard_figure(summary: dict[str, pd.DataFrame], title: str = ""):
    """Orders per day (partial days hatched), current status mix, latency percentiles."""
    from matplotlib.patches import Patch

    fig = _figure(13, 3.8)
    a, b, c = fig.subplots(1, 3, width_ratios=[1.3, 1.2, 0.9])
    d = summary["per_day"]
    if d.empty:
        a.text(0.5, 0.5, "no orders in this range", ha="center", va="center", transform=a.transAxes)
    else:
        days = pd.to_datetime(pd.Series(d["day"]).astype(str))
        partial = d["partial"].astype(bool).tolist()
        a.bar(days, d["orders"], width=0.8,
              color=["#9ecae1" if p else "tab:blue" for p in partial],
              hatch=None, edgecolor=["tab:blue" if p else "none" for p in partial])
        for bar, p in zip(a.patches, partial, strict=True):
            if p:
                bar.set_hatch("//")
        _date_axis(a, days, daily=True)
        if any(partial):
            a.legend(handles=[Patch(facecolor="#9ecae1", edgecolor="tab:blue", hatch="//",
                                    label=PARTIAL)], fontsize=8, loc="upper left")
        a.set_ylim(0, max(d["orders"]) * 1.2)
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
        b.set_xlim(0, max(m["orders"]) * 1.25)
        for y, v in enumerate(m["orders"]):
            b.text(v, y, f" {int(v):,}", va="center", fontsize=8)
        b.tick_params(axis="y", labelsize=9)
    b.set_title("current status")
    b.set_xlabel("orders")

    lat = summary["latency"]
    hours = lat["hours"]
    if hours.isna().all():
        c.text(0.5, 0.5, "no delivered orders", ha="center", va="center", transform=c.transAxes)
        c.set_xticks([])
        c.set_yticks([])
    else:
        c.bar(lat["percentile"], hours.fillna(0), color="tab:orange")
        c.set_ylim(0, float(hours.max()) * 1.25 or 1)
        for x, v in zip(lat["percentile"], hours, strict=True):
            c.text(x, v, f"{v:,.1f} h", ha="center", va="bottom", fontsize=8)
    c.set_title("delivery latency")
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
    ax.legend(fontsize=8, loc="upper left")
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
    ax.legend(fontsize=8, loc="lower right")
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
        ax.legend(fontsize=8)
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
        ax.legend(fontsize=8)
        ax.set_xlabel("detected (UTC day)")
        ax.set_ylabel("open exceptions")
    ax.set_title("open exceptions by type")
    return fig

"""What the analyst notebooks show, as plain functions returning DataFrames and figures.

The notebooks in ``notebooks/explore`` only call these (and the widgets built on them in
``widgets.py``), so everything they display is reachable by tests. Reads open the
warehouse read-only where the engine allows it (DuckDB: ``access_mode=read_only``) and
every connection is released after its block, so scheduled jobs can still write. Queries
are SQLAlchemy Core over the catalog-discovered relations: identifiers are quoted by the
warehouse's dialect and every value is bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig, load_config
from ot_core.contract import CONTRACTS
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database, open_database
from ot_core.db.warehouse import EXCEPTIONS_TABLE, WATERMARKS_TABLE, exceptions_table, mart_name
from ot_core.pipeline import exception_log
from ot_core.timeutil import to_epoch, utcnow

JOB_RUNS_TABLE = "ot_job_runs"
DELIVERED = 40  # uni_tracking_info.status of a delivered parcel
DAY = 86400


@dataclass
class Workbench:
    """The config and a read-only warehouse handle shared by one notebook's cells."""

    cfg: PipelineConfig
    wh: Database

    def writer(self) -> Database:
        """A short-lived read-write handle (resolve an exception); dispose it after use."""
        return open_database("warehouse", self.wh.url.difference_update_query(["access_mode"]))

    def close(self) -> None:
        self.wh.dispose()


def open_workbench(config: PipelineConfig | str | None = None,
                   warehouse: Database | str | None = None) -> Workbench:
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    db = warehouse if isinstance(warehouse, Database) else open_database("warehouse", warehouse)
    if db.backend.name == "duckdb" and "access_mode" not in db.url.query:
        db.dispose()
        db = open_database("warehouse", db.url.update_query_dict({"access_mode": "read_only"}))
    return Workbench(cfg, db)


# -- relations --------------------------------------------------------------------------------
def _rel(schema: str, name: str, table: str) -> sa.TableClause:
    cols = [sa.column(c) for c in CONTRACTS[table].column_names]
    return sa.table(name, *cols, schema=schema)


def _exists(wb: Workbench, conn: Connection, schema: str, name: str) -> bool:
    return name in wb.wh.backend.list_tables(conn, schema, name)


def relations(wb: Workbench, conn: Connection, table: str) -> list[tuple[str, sa.TableClause]]:
    """(label, relation) for the mart and every history table of ``table``, newest first."""
    mart = wb.cfg.schemas.mart
    out = [("mart", _rel(mart, mart_name(table), table))]
    for h in reversed(history_tables(conn, wb.cfg, wb.wh.backend, table)):
        out.append((h.period, _rel(mart, h.name, table)))
    return out


def _union(wb: Workbench, conn: Connection, table: str, where, alias: str = "u") -> sa.Subquery:
    parts = [sa.select(*r.c, sa.literal(label).label("found_in")).where(where(r))
             for label, r in relations(wb, conn, table)]
    return sa.union_all(*parts).subquery(alias)


def _frame(conn: Connection, stmt) -> pd.DataFrame:
    res = conn.execute(stmt)
    return pd.DataFrame(res.all(), columns=list(res.keys()))


def _epoch_to_ts(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    for c in cols:
        if c in frame:
            frame[c + "_at"] = pd.to_datetime(frame[c].astype("Int64"), unit="s", utc=True)
    return frame


# -- order lookup -----------------------------------------------------------------------------
@dataclass
class OrderView:
    order_id: int | None
    ecs: pd.DataFrame
    status: pd.DataFrame
    timeline: pd.DataFrame

    @property
    def found(self) -> bool:
        return self.order_id is not None and not (
            self.ecs.empty and self.status.empty and self.timeline.empty)


def sample_order_id(wb: Workbench) -> int | None:
    """The most recent order with path events (a sensible default for the lookup notebook)."""
    with wb.wh.engine.connect() as conn:
        r = _rel(wb.cfg.schemas.mart, mart_name("uni_tracking_spath"), "uni_tracking_spath")
        value = conn.execute(sa.select(sa.func.max(r.c.order_id))).scalar()
    return None if value is None else int(value)


def order_lookup(wb: Workbench, order_id: int | None = None,
                 order_sn: str | None = None) -> OrderView:
    """ECS info, current status and the full path timeline of one order, across the mart
    and every history table (``found_in`` says where each row lives). Neither key given:
    the latest order with path events."""
    if order_id is None and not order_sn:
        order_id = sample_order_id(wb)  # nothing asked: show the latest order
        if order_id is None:
            return OrderView(None, pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    with wb.wh.engine.connect() as conn:
        if order_id is not None:
            ecs = _frame(conn, sa.select(_union(wb, conn, "ecs_order_info",
                                                lambda r: r.c.order_id == int(order_id))))
        else:
            ecs = _frame(conn, sa.select(_union(wb, conn, "ecs_order_info",
                                                lambda r: r.c.order_sn == str(order_sn))))
            order_id = int(ecs["order_id"].iloc[0]) if len(ecs) else None
        if order_id is None:
            empty = pd.DataFrame()
            return OrderView(None, ecs, empty, empty)
        oid = int(order_id)
        status = _frame(conn, sa.select(_union(wb, conn, "uni_tracking_info",
                                               lambda r: r.c.order_id == oid)))
        u = _union(wb, conn, "uni_tracking_spath", lambda r: r.c.order_id == oid)
        timeline = _frame(conn, sa.select(u).order_by(u.c.pathTime, u.c.id))
    wb.wh.dispose()
    return OrderView(oid, _epoch_to_ts(ecs, "add_time"), _epoch_to_ts(status, "update_time"),
                     _epoch_to_ts(timeline, "pathTime", "add_time"))


def timeline_figure(view: OrderView):
    """Path events on a time axis, labelled by path code (matplotlib, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3))
    ax = fig.subplots()
    t = view.timeline
    if t.empty:
        ax.text(0.5, 0.5, "no path events", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.plot(t["pathTime_at"].dt.tz_localize(None), range(len(t)), marker="o")
        for i, (x, code) in enumerate(zip(t["pathTime_at"].dt.tz_localize(None), t["path_code"],
                                          strict=True)):
            ax.annotate(str(code), (x, i), textcoords="offset points", xytext=(5, 0), fontsize=8)
        ax.set_ylabel("event #")
    ax.set_title(f"order {view.order_id}: path timeline")
    fig.autofmt_xdate()
    return fig


# -- partner dashboard ------------------------------------------------------------------------
def partners(wb: Workbench) -> list[int]:
    with wb.wh.engine.connect() as conn:
        r = _rel(wb.cfg.schemas.mart, mart_name("ecs_order_info"), "ecs_order_info")
        rows = conn.execute(sa.select(r.c.partner_id).distinct().order_by(r.c.partner_id)).all()
    return [int(x[0]) for x in rows]


def order_dates(wb: Workbench) -> tuple[date, date] | None:
    """First and last order day in the mart (the dashboard's default range)."""
    with wb.wh.engine.connect() as conn:
        r = _rel(wb.cfg.schemas.mart, mart_name("ecs_order_info"), "ecs_order_info")
        lo, hi = conn.execute(sa.select(sa.func.min(r.c.add_time), sa.func.max(r.c.add_time))).one()
    if lo is None:
        return None
    return (datetime.fromtimestamp(int(lo), UTC).date(), datetime.fromtimestamp(int(hi), UTC).date())


def _day_bounds(start: date, end: date) -> tuple[int, int]:
    lo = to_epoch(datetime(start.year, start.month, start.day, tzinfo=UTC))
    hi = to_epoch(datetime(end.year, end.month, end.day, tzinfo=UTC)) + DAY
    return lo, hi


def partner_summary(wb: Workbench, partner_id: int, start: date, end: date) -> dict[str, pd.DataFrame]:
    """Orders per day, status mix and delivery-latency percentiles of one partner's orders
    created in [start, end] (whole UTC days). Aggregation happens in the warehouse."""
    lo, hi = _day_bounds(start, end)
    with wb.wh.engine.connect() as conn:
        e = _union(wb, conn, "ecs_order_info", lambda r: sa.and_(
            r.c.partner_id == int(partner_id), r.c.add_time >= lo, r.c.add_time < hi), "e")
        day = (e.c.add_time - e.c.add_time % DAY).label("day")
        per_day = _frame(conn, sa.select(day, sa.func.count().label("orders"))
                         .group_by(day).order_by(day))
        u = _union(wb, conn, "uni_tracking_info", lambda r: sa.true())
        joined = e.join(u, u.c.order_id == e.c.order_id)
        mix = _frame(conn, sa.select(u.c.status, sa.func.count().label("orders"))
                     .select_from(joined).group_by(u.c.status).order_by(u.c.status))
        lat = _frame(conn, sa.select((u.c.update_time - e.c.add_time).label("seconds"))
                     .select_from(joined).where(u.c.status == DELIVERED))
    wb.wh.dispose()
    per_day["day"] = pd.to_datetime(per_day["day"].astype("Int64"), unit="s", utc=True).dt.date
    hours = lat["seconds"].astype("float64") / 3600
    pct = [50, 90, 95, 99]
    latency = pd.DataFrame({
        "percentile": [f"p{p}" for p in pct],
        "hours": [float(hours.quantile(p / 100)) if len(hours) else float("nan") for p in pct],
    })
    return {"per_day": per_day, "status_mix": mix, "latency": latency,
            "delivered": pd.DataFrame({"delivered": [len(hours)]})}


def dashboard_figure(summary: dict[str, pd.DataFrame], title: str = ""):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.2))
    a, b, c = fig.subplots(1, 3)
    d = summary["per_day"]
    a.bar([str(x) for x in d["day"]], d["orders"])
    a.set_title("orders per day")
    a.tick_params(axis="x", labelrotation=90, labelsize=6)
    m = summary["status_mix"]
    b.bar([str(s) for s in m["status"]], m["orders"])
    b.set_title("status mix (current)")
    lat = summary["latency"]
    c.bar(lat["percentile"], lat["hours"].fillna(0))
    c.set_title("delivery latency (hours)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- pipeline health --------------------------------------------------------------------------
def job_runs(wb: Workbench, limit: int = 50) -> pd.DataFrame | None:
    """Recent job runs with durations, or None when no job-runs table exists yet."""
    schema = wb.cfg.schemas.control
    with wb.wh.engine.connect() as conn:
        if not _exists(wb, conn, schema, JOB_RUNS_TABLE):
            return None
        t = sa.table(JOB_RUNS_TABLE, *(sa.column(c) for c in (
            "run_id", "job", "started_at", "ended_at", "status", "notebook_path", "error")),
            schema=schema)
        frame = _frame(conn, sa.select(t).order_by(t.c.started_at.desc()).limit(int(limit)))
    frame["seconds"] = (pd.to_datetime(frame["ended_at"]) - pd.to_datetime(frame["started_at"])
                        ).dt.total_seconds()
    return frame


def freshness(wb: Workbench, now: datetime | None = None) -> pd.DataFrame:
    """Per table: up to when it is extracted, and how far behind ``now`` that is."""
    schema = wb.cfg.schemas.control
    cols = ["table_name", "extracted_until", "lag_minutes", "updated_at"]
    with wb.wh.engine.connect() as conn:
        if not _exists(wb, conn, schema, WATERMARKS_TABLE):
            return pd.DataFrame(columns=cols)
        t = sa.table(WATERMARKS_TABLE, sa.column("table_name"), sa.column("watermark"),
                     sa.column("updated_at"), schema=schema)
        frame = _frame(conn, sa.select(t).order_by(t.c.table_name))
    now_s = to_epoch(now or utcnow())
    frame["extracted_until"] = pd.to_datetime(frame["watermark"].astype("Int64"), unit="s", utc=True)
    frame["lag_minutes"] = (now_s - frame["watermark"].astype("int64")) / 60
    return frame[cols]


def open_exceptions(wb: Workbench) -> pd.DataFrame:
    """Open exceptions, oldest first (empty before the first cycle created the table)."""
    mart = wb.cfg.schemas.mart
    with wb.wh.engine.connect() as conn:
        if not _exists(wb, conn, mart, EXCEPTIONS_TABLE):
            t = exceptions_table(sa.MetaData(), mart, wb.wh.backend)
            return pd.DataFrame(columns=[c.name for c in t.columns])
        return exception_log.exceptions_frame(conn, wb.cfg, wb.wh.backend)


def resolve_exception(wb: Workbench, exception_id: int, note: str) -> dict:
    """Close one open exception with a note (``exception_log.resolve_in``: it refuses an
    empty note, an unknown id and an already-resolved one with a UsageError)."""
    db = wb.writer()
    try:
        with db.engine.begin() as conn:
            return exception_log.resolve_in(conn, wb.cfg, db.backend, int(exception_id), note)
    finally:
        db.dispose()


def job_runs_display(wb: Workbench, limit: int = 50) -> pd.DataFrame | str:
    runs = job_runs(wb, limit)
    return "no job runs recorded yet" if runs is None or runs.empty else runs


def job_runs_figure(runs: pd.DataFrame | str):
    """Duration of recent runs per job (seconds)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3))
    ax = fig.subplots()
    if isinstance(runs, str):
        ax.text(0.5, 0.5, runs, ha="center", va="center", transform=ax.transAxes)
    else:
        for job, g in runs.sort_values("started_at").groupby("job"):
            ax.plot(pd.to_datetime(g["started_at"]), g["seconds"], marker="o", label=str(job))
        ax.legend(fontsize=8)
        ax.set_ylabel("seconds")
    ax.set_title("job run durations")
    return fig


def compare_results(wb: Workbench) -> pd.DataFrame:
    """Kept comparison results (``ot compare`` / the monthly job), oldest first."""
    from ot_core.quality.compare import load_results

    return load_results(wb.cfg, wb.wh)


def compare_figure(results: pd.DataFrame):
    """Mismatch rate per table and month (the latest run of each)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3))
    ax = fig.subplots()
    monthly = results.dropna(subset=["month"]) if len(results) else results
    if monthly.empty:
        ax.text(0.5, 0.5, "no monthly comparison recorded yet", ha="center", va="center",
                transform=ax.transAxes)
    else:
        latest = monthly.sort_values("run_at").groupby(["table_name", "month"]).tail(1)
        for table, g in latest.sort_values("month").groupby("table_name"):
            ax.plot(g["month"], g["mismatch_rate"].astype(float), marker="o", label=str(table))
        ax.legend(fontsize=8)
        ax.set_ylabel("mismatch rate")
    ax.set_title("comparison with the source, per table and month")
    return fig

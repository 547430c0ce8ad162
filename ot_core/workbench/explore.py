"""What the analyst notebooks read, as plain functions returning DataFrames.

The notebooks in ``notebooks/explore`` only build the views in ``widgets.py`` on top of
these, so everything they display is reachable by tests. Reads go through ``OT_ANALYST_URL``
(a read-only role, docs/roles.md) and every session is read-only at the database (DuckDB:
``access_mode=read_only``, and only when the file exists: a notebook never creates an empty
warehouse; PostgreSQL and Redshift: READ ONLY transactions), and every connection is released after
its block, so scheduled jobs can still write. Queries are SQLAlchemy Core over the
catalog-discovered relations: identifiers are quoted by the dialect and every value is bound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from ot_core.config import PipelineConfig, load_config
from ot_core.contract import CONTRACTS
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database, analyst_url, open_database
from ot_core.db.schema import (
    CHECK_RESULTS_TABLE,
    EXCEPTIONS_TABLE,
    JOB_RUNS_TABLE,
    WATERMARKS_TABLE,
    mart_name,
    tables_for,
)
from ot_core.engines import backend_class
from ot_core.errors import ConfigError, first_line, is_transient
from ot_core.pipeline import exception_log
from ot_core.secrets import masked, redact
from ot_core.timeutil import parse_duration, to_epoch, utcnow
from ot_core.workbench.present import Message, day_coverage

log = logging.getLogger("ot")
DELIVERED = 40  # uni_tracking_info.status of a delivered parcel
DAY = 86400
MIN_EVENTS = 4  # the default order shows a real path, not a lone label-created event
FIX = "run `ot demo`, or set OT_WAREHOUSE_URL"


@dataclass
class Workbench:
    """The config and a read-only warehouse handle shared by one notebook's cells.

    ``problem`` is one readable line when the warehouse cannot be used (missing file, no
    marts, unreadable); every view then shows that line instead of failing. ``warning`` says
    the workbench reads with the pipeline's role (no ``OT_ANALYST_URL``)."""

    cfg: PipelineConfig | None
    wh: Database | None
    problem: str | None = None
    where: str = ""
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def message(self) -> Message:
        if self.problem:
            return Message(self.problem, "problem")
        text = f"Warehouse `{self.where}` (read-only sessions)."
        return Message(f"{text} {self.warning}." if self.warning else text)

    def _repr_markdown_(self) -> str:
        return self.message()._repr_markdown_()

    def __repr__(self) -> str:
        return self.message().text

    @property
    def config(self) -> PipelineConfig:
        """The config of a usable workbench (else the one line saying what to run)."""
        if self.cfg is None or self.problem:
            raise ConfigError(self.problem or "the workbench has no config")
        return self.cfg

    @property
    def db(self) -> Database:
        """The read-only warehouse of a usable workbench (else the one line saying what to run)."""
        if self.wh is None or self.problem:
            raise ConfigError(self.problem or f"the workbench has no warehouse: {FIX}")
        return self.wh

    def writer(self) -> Database:
        """A short-lived read-write handle (resolve an exception); dispose it after use."""
        return open_database("warehouse", self.db.url.difference_update_query(["access_mode"]))

    def close(self) -> None:
        if self.wh is not None:
            self.wh.dispose()


def _target(warehouse: Database | str | None) -> tuple[URL, str | None]:
    if isinstance(warehouse, Database):
        return warehouse.url, None
    if isinstance(warehouse, str):
        return make_url(warehouse), None
    return analyst_url()  # OT_ANALYST_URL, else the warehouse's (with a warning)


def open_workbench(config: PipelineConfig | str | None = None,
                   warehouse: Database | str | None = None) -> Workbench:
    """The notebooks' first call. Never raises for a missing or unreadable warehouse: the
    returned workbench carries one line saying what to run."""
    try:
        cfg = config if isinstance(config, PipelineConfig) else load_config(config)
        url, warning = _target(warehouse)
    except ConfigError as e:
        return Workbench(None, None, str(e))
    where = masked(url)
    try:
        embedded = backend_class(url.get_backend_name(), "warehouse").embedded_file
    except ConfigError as e:
        return Workbench(cfg, None, str(e), where)
    if embedded:
        path = Path(url.database or "")
        if not url.database or url.database == ":memory:" or not path.is_file():
            return Workbench(cfg, None, f"No warehouse at {path}: {FIX}.", where)
    if warning:
        log.warning(warning)
    db = open_database("warehouse", url, read_only=True)
    wb = Workbench(cfg, db, None, where, warning)
    try:
        with db.engine.connect() as conn:
            has_marts = _exists(wb, conn, cfg.schemas.mart, mart_name("ecs_order_info"))
    except Exception as e:  # noqa: BLE001 - any failure to read becomes the one line
        db.dispose()
        reason = redact(first_line(e))
        if is_transient(e):
            return Workbench(cfg, None, f"The warehouse {where} is busy ({reason}): "
                             "run this cell again in a minute.", where)
        return Workbench(cfg, None, f"The warehouse {where} cannot be read ({reason}): {FIX}.",
                         where)
    db.dispose()
    if not has_marts:
        return Workbench(cfg, None, f"The warehouse {where} has no marts yet: {FIX}.", where)
    return wb


# -- relations --------------------------------------------------------------------------------
def _rel(schema: str, name: str, table: str) -> sa.TableClause:
    cols: list[sa.ColumnClause[Any]] = [sa.column(c) for c in CONTRACTS[table].column_names]
    return sa.table(name, *cols, schema=schema)


def _mart(wb: Workbench, table: str) -> sa.TableClause:
    return _rel(wb.config.schemas.mart, mart_name(table), table)


def _exists(wb: Workbench, conn: Connection, schema: str, name: str) -> bool:
    return name in wb.db.backend.list_tables(conn, schema, name)


def relations(wb: Workbench, conn: Connection, table: str) -> list[tuple[str, sa.TableClause]]:
    """(label, relation) for the mart and every history table of ``table``, newest first."""
    mart = wb.config.schemas.mart
    out = [("mart", _rel(mart, mart_name(table), table))]
    for h in reversed(history_tables(conn, wb.config, wb.db.backend, table)):
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
    """A recent order worth showing: it has a current status and several path events
    (created in the last week of data; the newest such order, else the one with most events)."""
    s, u = _mart(wb, "uni_tracking_spath"), _mart(wb, "uni_tracking_info")
    with wb.db.engine.connect() as conn:
        top = conn.execute(sa.select(sa.func.max(s.c.add_time))).scalar()
        if top is None:
            return None
        n = sa.func.count()
        q = (sa.select(s.c.order_id).join(u, u.c.order_id == s.c.order_id)
             .where(s.c.add_time >= int(top) - 7 * DAY).group_by(s.c.order_id)
             .order_by(sa.case((n >= MIN_EVENTS, 1), else_=0).desc(), s.c.order_id.desc())
             .limit(1))
        value = conn.execute(q).scalar()
    wb.db.dispose()
    return None if value is None else int(value)


def order_lookup(wb: Workbench, order_id: int | None = None,
                 order_sn: str | None = None) -> OrderView:
    """ECS info, current status and the full path timeline of one order, across the mart
    and every history table (``found_in`` says where each row lives). Neither key given:
    ``sample_order_id``."""
    if order_id is None and not order_sn:
        order_id = sample_order_id(wb)
        if order_id is None:
            return OrderView(None, pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    with wb.db.engine.connect() as conn:
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
    wb.db.dispose()
    return OrderView(oid, _epoch_to_ts(ecs, "add_time"), _epoch_to_ts(status, "update_time"),
                     _epoch_to_ts(timeline, "pathTime", "add_time"))


# -- partner dashboard ------------------------------------------------------------------------
def partner_choices(wb: Workbench) -> pd.DataFrame:
    """Partners with their order count in the mart, busiest first (the picker's list)."""
    r = _mart(wb, "ecs_order_info")
    n = sa.func.count().label("orders")
    with wb.db.engine.connect() as conn:
        frame = _frame(conn, sa.select(r.c.partner_id, n).group_by(r.c.partner_id)
                       .order_by(n.desc(), r.c.partner_id))
    wb.db.dispose()
    return frame.astype({"partner_id": "int64", "orders": "int64"})


def partners(wb: Workbench) -> list[int]:
    return sorted(partner_choices(wb)["partner_id"].tolist())


def order_dates(wb: Workbench) -> tuple[date, date] | None:
    """First and last order day in the mart (the dashboard's default range)."""
    r = _mart(wb, "ecs_order_info")
    with wb.db.engine.connect() as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(r.c.add_time), sa.func.max(r.c.add_time))).one()
    if lo is None:
        return None
    return (datetime.fromtimestamp(int(lo), UTC).date(), datetime.fromtimestamp(int(hi), UTC).date())


def data_horizon(wb: Workbench) -> int | None:
    """Up to when ECS orders are extracted (its watermark; else the newest order): days
    ending after it are partial."""
    with wb.db.engine.connect() as conn:
        ctl = wb.config.schemas.control
        if _exists(wb, conn, ctl, WATERMARKS_TABLE):
            t = sa.table(WATERMARKS_TABLE, sa.column("table_name"), sa.column("watermark"),
                         schema=ctl)
            mark = conn.execute(sa.select(t.c.watermark)
                                .where(t.c.table_name == "ecs_order_info")).scalar()
            if mark is not None:
                return int(mark)
        r = _mart(wb, "ecs_order_info")
        top = conn.execute(sa.select(sa.func.max(r.c.add_time))).scalar()
    return None if top is None else int(top) + 1


def _day_bounds(start: date, end: date) -> tuple[int, int]:
    lo = to_epoch(datetime(start.year, start.month, start.day, tzinfo=UTC))
    hi = to_epoch(datetime(end.year, end.month, end.day, tzinfo=UTC)) + DAY
    return lo, hi


def partner_summary(wb: Workbench, partner_id: int, start: date, end: date) -> dict[str, pd.DataFrame]:
    """Orders per day over every day of [start, end] (whole UTC days; ``partial`` and
    ``coverage``: the warehouse does not hold the whole day: its data begins later, or it is
    not fully extracted yet), status mix and delivery-latency percentiles of one partner's
    orders, each percentile with the number of delivered orders behind it. Aggregation
    happens in the warehouse."""
    lo, hi = _day_bounds(start, end)
    horizon = data_horizon(wb)
    with wb.db.engine.connect() as conn:
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
        a = _union(wb, conn, "ecs_order_info", lambda r: sa.true(), "a")
        begins = conn.execute(sa.select(sa.func.min(a.c.add_time)).select_from(a)).scalar()
    wb.db.dispose()
    counts = dict(zip(per_day["day"].astype("int64"), per_day["orders"].astype("int64"),
                      strict=True))
    starts = pd.Series(range(lo, hi, DAY), dtype="int64")  # every day asked for, 0 if none
    out = pd.DataFrame({"day": pd.to_datetime(starts, unit="s", utc=True).dt.date,
                        "orders": [int(counts.get(int(x), 0)) for x in starts]})
    out["partial"] = [day_coverage(int(x), begins, horizon) != "" for x in starts]
    out["coverage"] = [day_coverage(int(x), begins, horizon) for x in starts]
    mix = mix.astype({"status": "int64", "orders": "int64"}) if len(mix) else mix
    hours = lat["seconds"].astype("float64") / 3600
    pct = [50, 90, 95, 99]
    latency = pd.DataFrame({
        "percentile": [f"p{p}" for p in pct],
        "hours": [float(hours.quantile(p / 100)) if len(hours) else float("nan") for p in pct],
        "delivered orders": [len(hours)] * len(pct),
    })
    latency["orders at or under"] = [int((hours <= h).sum()) if len(hours) else 0
                                     for h in latency["hours"]]
    return {"per_day": out, "status_mix": mix, "latency": latency,
            "delivered": pd.DataFrame({"delivered": [len(hours)]})}


# -- pipeline health --------------------------------------------------------------------------
def job_runs(wb: Workbench, limit: int = 50) -> pd.DataFrame | None:
    """Recent job runs with durations (``seconds``: none for skipped or running runs), or
    None when no job-runs table exists yet."""
    schema = wb.config.schemas.control
    with wb.db.engine.connect() as conn:
        if not _exists(wb, conn, schema, JOB_RUNS_TABLE):
            return None
        t = sa.table(JOB_RUNS_TABLE, *(sa.column(c) for c in (
            "run_id", "job", "started_at", "ended_at", "status", "notebook_path", "error")),
            schema=schema)
        frame = _frame(conn, sa.select(t).order_by(t.c.started_at.desc(), t.c.run_id.desc())
                       .limit(int(limit)))
    wb.db.dispose()
    seconds = (pd.to_datetime(frame["ended_at"]) - pd.to_datetime(frame["started_at"])
               ).dt.total_seconds()
    frame["seconds"] = seconds.where(frame["status"].isin(["succeeded", "failed"]))
    return frame


def cycle_interval(wb: Workbench) -> int:
    return parse_duration(wb.config.cycle.interval)


def freshness(wb: Workbench, now: datetime | None = None) -> pd.DataFrame:
    """Per table: up to when it is extracted, how far behind ``now`` that is, and whether
    that is ``OK`` or ``late`` (late: more than two cycle intervals behind)."""
    schema = wb.config.schemas.control
    cols = ["table_name", "extracted_until", "lag_minutes", "verdict"]
    with wb.db.engine.connect() as conn:
        if not _exists(wb, conn, schema, WATERMARKS_TABLE):
            return pd.DataFrame(columns=cols)
        t = sa.table(WATERMARKS_TABLE, sa.column("table_name"), sa.column("watermark"),
                     schema=schema)
        frame = _frame(conn, sa.select(t).order_by(t.c.table_name))
    wb.db.dispose()
    now_s = to_epoch(now or utcnow())
    frame["extracted_until"] = pd.to_datetime(frame["watermark"].astype("Int64"), unit="s", utc=True)
    frame["lag_minutes"] = (now_s - frame["watermark"].astype("int64")) / 60
    late = frame["lag_minutes"] * 60 > 2 * cycle_interval(wb)
    frame["verdict"] = late.map({True: "late", False: "OK"})
    return frame[cols]


def check_results(wb: Workbench) -> pd.DataFrame:
    """The rows of the latest daily check run (``ot_check_results``), failing first."""
    schema = wb.config.schemas.control
    cols = ["checked_at", "as_of", "check_name", "subject", "status", "row_count", "detail"]
    with wb.db.engine.connect() as conn:
        if not _exists(wb, conn, schema, CHECK_RESULTS_TABLE):
            return pd.DataFrame(columns=cols)
        t = sa.table(CHECK_RESULTS_TABLE, *(sa.column(c) for c in cols), schema=schema)
        latest = sa.select(sa.func.max(t.c.checked_at)).scalar_subquery()
        frame = _frame(conn, sa.select(*(t.c[c] for c in cols)).where(t.c.checked_at == latest)
                       .order_by(t.c.check_name, t.c.subject))
    wb.db.dispose()
    order = frame["status"].map(lambda s: 0 if s == "fail" else 1 if s == "warn" else 2)
    return frame.assign(_o=order).sort_values(["_o", "check_name", "subject"]).drop(columns="_o")


def _exceptions(wb: Workbench, resolved: bool) -> pd.DataFrame:
    mart = wb.config.schemas.mart
    with wb.db.engine.connect() as conn:
        if not _exists(wb, conn, mart, EXCEPTIONS_TABLE):
            t = tables_for(wb.config, wb.db.backend).exceptions
            return pd.DataFrame(columns=[c.name for c in t.columns])
        frame = exception_log.exceptions_frame(conn, wb.config, wb.db.backend, resolved)
    wb.db.dispose()
    return frame


def open_exceptions(wb: Workbench) -> pd.DataFrame:
    """Open exceptions, oldest first (empty before the first cycle created the table)."""
    return _exceptions(wb, False)


def resolved_exceptions(wb: Workbench, limit: int = 10) -> pd.DataFrame:
    """The most recently resolved exceptions, newest first."""
    frame = _exceptions(wb, True)
    done = frame[frame["resolved_at"].notna()]
    return done.sort_values(["resolved_at", "exception_id"], ascending=False).head(limit)


def resolve_exception(wb: Workbench, exception_id: int, note: str) -> dict:
    """Close one open exception with a note, through the one narrow write path."""
    db = wb.writer()
    try:
        with db.engine.begin() as conn:
            return exception_log.resolve_in(conn, wb.config, db.backend, int(exception_id), note)
    finally:
        db.dispose()


def compare_results(wb: Workbench) -> pd.DataFrame:
    """Kept comparison results (``ot compare`` / the monthly job), oldest first."""
    from ot_core.quality.compare import load_results

    return load_results(wb.config, wb.db)


def compare_figure(results: pd.DataFrame, max_rate: float | None = None):
    """The comparison chart (the monthly job notebook draws it from here)."""
    from ot_core.workbench.charts import compare_figure as draw

    return draw(results, max_rate)

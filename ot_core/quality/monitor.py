"""Daily monitoring: data checks over the warehouse, each with a status, a count and sample
rows, kept in ``<control>.ot_check_results`` so a notebook can chart the last 30 days.

Every check runs even when an earlier one fails; the job fails (``MonitoringFailed``) after
all of them ran, so one bad morning shows every problem at once. History tables are
discovered from the catalog at run time (docs/lifecycle.md#catalog-discovery); periods
come from ``ot_core.pipeline.periods``, so monitoring warns before a gap
(docs/legacy-defects.md#8-history-period-not-defined-in-time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.contract import CONTRACTS
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database, opened
from ot_core.db.schema import EXCEPTIONS_TABLE, mart_name, names
from ot_core.db.sql import Renderer
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import MonitoringFailed
from ot_core.pipeline.control import LOADED, Control
from ot_core.pipeline.exception_log import ROUTING_GAP, exceptions_frame
from ot_core.pipeline.lifecycle import ACTIVE_TABLE, GATED_TABLE, marks_table
from ot_core.pipeline.periods import AHEAD, cutoff, periods_between
from ot_core.timeutil import day_floor, from_epoch, iso, parse_as_of, to_epoch, utcnow

log = logging.getLogger("ot.monitor")
OK, FAIL = "ok", "fail"
UTI, SPATH = "uni_tracking_info", "uni_tracking_spath"


@dataclass
class Thresholds:
    freshness_max_minutes: int = 60
    # path events arrive up to days late: younger orders may rightly have none yet
    missing_spath_grace_hours: int = 144
    unmerged_grace_minutes: int = 30
    sample_rows: int = 5


@dataclass
class CheckResult:
    check: str
    subject: str
    status: str
    count: int
    detail: str
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Context:
    conn: Connection
    cfg: PipelineConfig
    wh: Warehouse
    source: Database | None
    as_of: int
    limits: Thresholds

    @property
    def r(self) -> Renderer:
        return Renderer(self.wh.backend)

    def q(self, schema: str, table: str) -> str:
        return self.wh.backend.qualified(schema, table)

    def frame(self, sql: str, params: dict | None = None) -> tuple[int, pd.DataFrame]:
        """All matching rows' count and the first ``sample_rows`` of them."""
        res = self.conn.execute(sa.text(sql), params or {})
        cols, rows = list(res.keys()), res.fetchall()
        return len(rows), pd.DataFrame([tuple(r) for r in rows[: self.limits.sample_rows]], columns=cols)

    def hist(self, table: str) -> list[str]:
        return [self.q(self.cfg.schemas.mart, h.name)
                for h in history_tables(self.conn, self.cfg, self.wh.backend, table)]


def _result(check: str, subject: str, count: int, detail: str, sample=None) -> CheckResult:
    return CheckResult(check, subject, FAIL if count else OK, int(count), detail,
                       sample if sample is not None else pd.DataFrame())


# -- the checks ------------------------------------------------------------------------------
def order_missing_spath(c: Context) -> list[CheckResult]:
    grace = c.as_of - c.limits.missing_spath_grace_hours * 3600
    sql = c.r.render("monitor/order_missing_spath.sql", uti=names(c.cfg, c.wh.backend, UTI).mart,
                     spath=names(c.cfg, c.wh.backend, SPATH).mart, hist=c.hist(SPATH))
    n, sample = c.frame(sql, {"grace_before": grace})
    return [_result("ORDER_MISSING_SPATH", UTI, n, f"orders not updated for "
                    f"{c.limits.missing_spath_grace_hours} h with no path event anywhere", sample)]


def archive_routing_gap(c: Context) -> list[CheckResult]:
    df = exceptions_frame(c.conn, c.cfg, c.wh.backend)
    df = df[df["exception_type"] == ROUTING_GAP]  # other exception types have their own checks
    return [_result("ARCHIVE_ROUTING_GAP", EXCEPTIONS_TABLE, len(df),
                    "open exceptions: rows past the cutoff whose period has no history table",
                    df.head(c.limits.sample_rows))]


def mart_retention_overdue(c: Context) -> list[CheckResult]:
    """Rows the lifecycle should have archived at its last run: judged at that run's instant
    (not now: rows cross the cutoff every minute between cycles), and without what it keeps
    on purpose (orders still active keep their ECS row in the mart)."""
    marks = marks_table(c.cfg, c.wh.backend)
    last = c.conn.execute(sa.select(sa.func.max(marks.c.as_of))).scalar()
    if last is None:
        return [_result("MART_RETENTION_OVERDUE", mart_name(t), 0,
                        "the lifecycle has not run yet: nothing to judge") for t in c.cfg.tables]
    cut = cutoff(int(last), c.cfg.retention_months)
    out = []
    for table in c.cfg.tables:
        sql = c.r.render("monitor/retention_overdue.sql", mart=names(c.cfg, c.wh.backend, table).mart,
                         key=CONTRACTS[table].key[0], column=c.cfg.table(table).archive_column,
                         exceptions=c.q(c.cfg.schemas.mart, EXCEPTIONS_TABLE),
                         active_mart=(names(c.cfg, c.wh.backend, ACTIVE_TABLE).mart
                                      if table == GATED_TABLE else None))
        n, sample = c.frame(sql, {"cutoff": cut, "source_table": table})
        kept = " (orders still tracked keep theirs)" if table == GATED_TABLE else ""
        out.append(_result("MART_RETENTION_OVERDUE", mart_name(table), n,
                           f"rows older than the cutoff {iso(from_epoch(cut))} of the last "
                           f"lifecycle run ({iso(from_epoch(int(last)))}) without an open "
                           f"exception{kept}", sample))
    return out


def duplicate_keys(c: Context) -> list[CheckResult]:
    out = []
    for table in c.cfg.tables:
        sql = c.r.render("monitor/duplicate_keys.sql", mart=names(c.cfg, c.wh.backend, table).mart,
                         key=list(CONTRACTS[table].key))
        n, sample = c.frame(sql)
        out.append(_result("DUPLICATE_KEYS", mart_name(table), n,
                           f"keys ({', '.join(CONTRACTS[table].key)}) held more than once", sample))
    return out


def freshness_lag(c: Context) -> list[CheckResult]:
    marks = Control.for_config(c.cfg, c.wh.backend).watermarks_all(c.conn)
    limit = c.limits.freshness_max_minutes * 60
    out = []
    for table in c.cfg.tables:
        mark = marks.get(table)
        lag: int | None = None
        if mark is None:
            late, detail = True, "no watermark: the table was never extracted"
        else:
            lag = c.as_of - int(mark)
            late = lag > limit
            detail = (f"watermark {iso(from_epoch(mark))} is {lag / 60:.0f} min behind as_of "
                      f"(limit {c.limits.freshness_max_minutes} min)")
        sample = pd.DataFrame([{"table": table, "watermark": mark, "lag_seconds": lag}])
        out.append(_result("FRESHNESS_LAG", table, 1 if late else 0, detail, sample))
    return out


def raw_trim_overdue(c: Context) -> list[CheckResult]:
    control = Control.for_config(c.cfg, c.wh.backend)
    b = control.batches
    out = []
    for table in c.cfg.tables:
        last = c.conn.execute(sa.select(sa.func.max(b.c.as_of)).where(b.c.table_name == table)).scalar()
        n = 0
        if last is not None:  # the trim runs on the cycles' as_of clock: judge it on that clock
            first_kept = control.first_kept_batch(c.conn, table, int(last) - c.cfg.table(table).raw_trim_hours * 3600)
            if first_kept is not None:
                sql = c.r.render("monitor/raw_trim_overdue.sql", raw=names(c.cfg, c.wh.backend, table).raw)
                n = int(c.conn.execute(sa.text(sql), {"first_kept_batch": first_kept}).scalar_one())
        out.append(_result("RAW_TRIM_OVERDUE", f"{table}_raw", n,
                           f"raw rows of merged batches older than {c.cfg.table(table).raw_trim_hours} h"))
    return out


def unmerged_batches(c: Context) -> list[CheckResult]:
    b = Control.for_config(c.cfg, c.wh.backend).batches
    before = c.as_of - c.limits.unmerged_grace_minutes * 60
    rows = c.conn.execute(sa.select(b.c.batch_id, b.c.table_name, b.c.as_of, b.c.rows_loaded)
                          .where(b.c.status == LOADED, b.c.as_of < before)
                          .order_by(b.c.batch_id)).fetchall()
    sample = pd.DataFrame([tuple(r) for r in rows[: c.limits.sample_rows]],
                          columns=["batch_id", "table_name", "as_of", "rows_loaded"])
    return [_result("UNMERGED_BATCHES", "ot_batches", len(rows),
                    f"batches loaded but not merged for over {c.limits.unmerged_grace_minutes} min",
                    sample)]


def period_table_missing_soon(c: Context) -> list[CheckResult]:
    soon = cutoff(c.as_of + int(AHEAD.total_seconds()), c.cfg.retention_months)
    out = []
    for table in c.cfg.tables:
        col = c.wh.backend.quote(c.cfg.table(table).archive_column)
        lo, hi = c.conn.execute(sa.text(
            f"SELECT MIN({col}), MAX({col}) FROM {names(c.cfg, c.wh.backend, table).mart} "
            f"WHERE {col} < :soon"), {"soon": soon}).one()
        needed = [] if lo is None else periods_between(int(lo), int(hi))
        have = {h.period for h in history_tables(c.conn, c.cfg, c.wh.backend, table)}
        missing = [p.table(table) for p in needed if p.name not in have]
        out.append(_result("PERIOD_TABLE_MISSING_SOON", table, len(missing),
                           f"history tables rows will need by {iso(from_epoch(soon))} (cutoff in "
                           f"{AHEAD.days} days): missing {', '.join(missing) or 'none'}",
                           pd.DataFrame({"missing_table": missing})))
    return out


def source_count_mismatch(c: Context) -> list[CheckResult]:
    if c.source is None:
        return []
    marks = Control.for_config(c.cfg, c.wh.backend).watermarks_all(c.conn)
    today = to_epoch(day_floor(from_epoch(c.as_of)))
    out = []
    src_r = Renderer(c.source.backend)
    with c.source.engine.connect() as sconn:
        for table in c.cfg.tables:
            tcfg = c.cfg.table(table)
            column = getattr(tcfg.cdc, "column", tcfg.archive_column)
            lo, hi = today - 86400, min(today, int(marks.get(table, today)))
            if hi <= lo:
                out.append(_result("SOURCE_COUNT_MISMATCH", table, 0, "yesterday not extracted yet"))
                continue
            args = {"lo": lo, "hi": hi}
            src_sql = src_r.render("monitor/count_window.sql", relation=c.source.backend.qualified(None, table), column=column)
            src_n = int(sconn.execute(sa.text(src_sql), args).scalar_one())
            wh_n = 0
            for rel in [names(c.cfg, c.wh.backend, table).mart, *c.hist(table)]:
                sql = c.r.render("monitor/count_window.sql", relation=rel, column=column)
                wh_n += int(c.conn.execute(sa.text(sql), args).scalar_one())
            # A row updated in place after the watermark has left the source's window but
            # is still in the warehouse's: the difference is bounded by those rows.
            moved = 0
            if tcfg.updated_in_place:
                since = src_r.render("monitor/count_since.sql", relation=c.source.backend.qualified(None, table),
                                     column=column)
                moved = int(sconn.execute(sa.text(since), {"since": hi}).scalar_one())
            bad = not (0 <= wh_n - src_n <= moved)
            out.append(_result(
                "SOURCE_COUNT_MISMATCH", table, abs(wh_n - src_n) if bad else 0,
                f"{column} in [{iso(from_epoch(lo))}, {iso(from_epoch(hi))}): source {src_n}, "
                f"warehouse mart+history {wh_n}" + (f" (up to {moved} may have moved on)" if moved else ""),
                pd.DataFrame([{"table": table, "source": src_n, "warehouse": wh_n, "moved_since": moved}])))
    return out


CHECKS: list[Callable[[Context], list[CheckResult]]] = [
    order_missing_spath, archive_routing_gap, mart_retention_overdue, duplicate_keys,
    freshness_lag, raw_trim_overdue, unmerged_batches, period_table_missing_soon,
    source_count_mismatch,
]


# -- results: stored, shown, charted -----------------------------------------------------------


@dataclass
class Report:
    as_of: str
    results: list[CheckResult]
    history: pd.DataFrame

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL]

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{"check": r.check, "subject": r.subject, "status": r.status,
                              "count": r.count, "detail": r.detail} for r in self.results])

    def figures(self) -> dict:
        return {"as_of": self.as_of, "checks": len(self.results), "failed": len(self.failed),
                "failing": sorted({f"{r.check}:{r.subject}" for r in self.failed})}

    def chart(self):
        """Failing rows per check per day over the last 30 days (matplotlib figure). The x
        axis spans the days there are (a day of padding), labelled by date: one day of
        results must not be drawn across years."""
        import matplotlib.dates as mdates
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        fig = Figure(figsize=(12, 3.8))
        ax = fig.subplots()
        h = self.history
        if h.empty:
            ax.text(0.5, 0.5, "no check results yet", ha="center", va="center")
        else:
            h = h.assign(day=pd.to_datetime(h["as_of"]).dt.floor("D"))
            pivot = h.pivot_table(index="day", columns="check_name", values="row_count",
                                  aggfunc="sum").fillna(0).sort_index()
            days = [d.to_pydatetime() for d in pivot.index]
            for i, check in enumerate(pivot.columns):
                ax.plot(days, pivot[check].to_numpy(), marker="os^vDP*Xph"[i % 10], label=check,
                        clip_on=False)
            lo, hi = pivot.index.min(), pivot.index.max()
            pad = pd.Timedelta(days=1) if hi - lo < pd.Timedelta(days=7) else (hi - lo) / 20
            ax.set_xlim((lo - pad).to_pydatetime(), (hi + pad).to_pydatetime())
            ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, (hi - lo).days // 8)))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
            ax.set_ylim(bottom=0, top=max(1.0, float(pivot.to_numpy().max()) * 1.15))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            # beside the plot, never over it: a legend inside can cover the one failing point
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                      title="check", title_fontsize=7)
        ax.set_title("failing rows per check, last 30 days")
        ax.set_xlabel("as_of day (UTC)")
        ax.set_ylabel("rows")
        fig.tight_layout()
        return fig

    def raise_if_failed(self) -> None:
        if self.failed:
            names_ = ", ".join(f"{r.check}({r.subject}: {r.count})" for r in self.failed)
            raise MonitoringFailed(f"{len(self.failed)} of {len(self.results)} checks failed: {names_}")


def run_checks(as_of: str | datetime | None = None, *, limits: Thresholds | None = None,
               config: PipelineConfig | str | None = None,
               warehouse: Warehouse | Database | str | None = None,
               source: Database | str | None = None, use_source: bool = True) -> Report:
    """Run every check, store each result, return them with the last 30 days of history."""
    at = parse_as_of(as_of)
    limits = limits or Thresholds()
    results: list[CheckResult] = []
    with using(config, warehouse) as wh, ExitStack() as stack:
        cfg = wh.cfg
        src = stack.enter_context(opened("source", source)) if use_source else None
        table = wh.tables.check_results
        with wh.connect() as conn:
            with conn.begin():
                wh.ensure(conn)
            ctx = Context(conn, cfg, wh, src, to_epoch(at), limits)
            for check in CHECKS:
                with conn.begin():
                    results.extend(check(ctx))
            now = utcnow().replace(tzinfo=None)
            with conn.begin():
                for r in results:
                    conn.execute(sa.insert(table).values(
                        checked_at=now, as_of=at.replace(tzinfo=None), check_name=r.check,
                        subject=r.subject, status=r.status, row_count=r.count,
                        detail=r.detail[:2000],
                        sample=r.sample.head(limits.sample_rows).to_json(orient="records", date_format="iso")))
                since = (at - timedelta(days=30)).replace(tzinfo=None)
                hist = conn.execute(sa.select(table.c.as_of, table.c.check_name, table.c.subject,
                                              table.c.status, table.c.row_count)
                                    .where(table.c.as_of >= since)).fetchall()
    for r in results:
        log.info("check %s %s: %s (%d) %s", r.check, r.subject, r.status, r.count, r.detail)
    history = pd.DataFrame([tuple(h) for h in hist],
                           columns=["as_of", "check_name", "subject", "status", "row_count"])
    return Report(iso(at), results, history)


def show(report: Report) -> None:
    """The notebook's display (ot_core/quality/monitor_view.py)."""
    from ot_core.quality.monitor_view import show as show_report

    show_report(report)


__all__ = ["CHECKS", "CheckResult", "MonitoringFailed", "Report", "Thresholds",
           "run_checks", "show"]

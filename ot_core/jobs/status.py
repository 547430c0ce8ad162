"""The on-call view of the pipeline, read once from the warehouse: what ``ot status`` prints,
what the pipeline-health notebook shows and what the alerts are judged on.

Per table: the last cycle that landed it (its watermark's ``updated_at``, warehouse clock),
how far its data is behind now (the watermark is on the source's clock), rows merged in the
last hour. Per job of the catalogue: its last run and outcome, the next slot, and whether
its lock has been held past its timeout (a run skipped while the holder had run longer than
the job's timeout). Checks failing in the latest daily monitoring; open exceptions by type
with their age; locks held (runs recorded as running).

Nothing is written: a read-only warehouse user can run it. A breach (exit 1) is a failing
check or a table whose last cycle is older than the freshness limit (``OT_MAX_LAG``,
``alerts.max_lag``; default four cycle intervals).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.db.connect import Database, connect_with_retries
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import EXIT_CHECK_FAILED, EXIT_OK
from ot_core.jobs.catalogue import Catalogue, load_catalogue
from ot_core.jobs.scheduler import next_slot
from ot_core.timeutil import from_epoch, iso, parse_duration, utcnow

FINISHED = ("succeeded", "failed", "abandoned")


def max_lag_seconds(cfg: PipelineConfig) -> int:
    """The freshness limit: OT_MAX_LAG, else alerts.max_lag, else four cycle intervals."""
    value = os.environ.get("OT_MAX_LAG") or cfg.alerts.max_lag
    return parse_duration(value) if value else 4 * parse_duration(cfg.cycle.interval)


def exception_max_age_seconds(cfg: PipelineConfig) -> int:
    return parse_duration(os.environ.get("OT_EXCEPTION_MAX_AGE") or cfg.alerts.exception_max_age)


@dataclass
class TableState:
    table: str
    last_cycle_at: str | None  # UTC, when a cycle last landed it
    extracted_until: str | None  # the watermark (source clock)
    behind_seconds: int | None  # now - watermark
    since_cycle_seconds: int | None  # now - last cycle
    rows_merged_last_hour: int
    late: bool  # no cycle within the freshness limit


@dataclass
class JobState:
    job: str
    schedule: str
    next_at: str
    last_run_id: int | None = None
    last_status: str | None = None  # of the newest row, skipped and running included
    last_started: str | None = None
    last_error: str | None = None
    failing_run_id: int | None = None  # the newest finished run, when it failed/was abandoned
    failing_status: str | None = None
    failing_error: str | None = None
    stuck: str | None = None  # lock held past the job's timeout, said in words


@dataclass
class CheckState:
    check: str
    subject: str
    count: int
    detail: str
    checked_at: str
    sample: list[dict] = field(default_factory=list)


@dataclass
class ExceptionGroup:
    type: str
    open: int
    oldest_detected_at: str
    oldest_age_seconds: int
    older_than_limit: int


@dataclass
class LockState:
    job: str
    run_id: int
    holder: str
    since: str
    held_seconds: int


@dataclass
class Status:
    at: str
    warehouse: str
    max_lag_seconds: int
    exception_max_age_seconds: int
    tables: list[TableState]
    jobs: list[JobState]
    checks_failing: list[CheckState]
    checks_at: str | None
    exceptions: list[ExceptionGroup]
    locks: list[LockState]

    @property
    def breaches(self) -> list[str]:
        """What makes the pipeline unhealthy (exit 1): failing checks and late tables."""
        out = [f"check {c.check} on {c.subject} failing ({c.count} rows)"
               for c in self.checks_failing]
        out += [f"table {t.table}: " + (f"no cycle for {_dur(t.since_cycle_seconds)}"
                                        if t.since_cycle_seconds is not None else "never cycled")
                + f" (limit {_dur(self.max_lag_seconds)})" for t in self.tables if t.late]
        return out

    @property
    def healthy(self) -> bool:
        return not self.breaches

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.healthy else EXIT_CHECK_FAILED

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy, "breaches": self.breaches}

    def text(self) -> str:
        return render_text(self)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if abs(s) < 120:
        return f"{s} s"
    if abs(s) < 7200:
        return f"{s // 60} min"
    if abs(s) < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _naive(dt: datetime) -> datetime:
    """UTC without a zone, as TIMESTAMP columns hold it."""
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _t(value: Any) -> str | None:
    """A stored time (naive UTC) as ISO text."""
    if value is None:
        return None
    return iso(value.replace(tzinfo=UTC)) if isinstance(value, datetime) else str(value)


def _exists(conn: Connection, wh: Warehouse, table: sa.Table) -> bool:
    return table.name in wh.backend.list_tables(conn, str(table.schema), table.name)


def _tables(conn: Connection, wh: Warehouse, now: datetime, limit: int) -> list[TableState]:
    t = wh.tables
    marks: dict[str, tuple] = {}
    merged: dict[str, int] = {}
    if _exists(conn, wh, t.watermarks):
        w = t.watermarks
        marks = {r[0]: (r[1], r[2]) for r in conn.execute(
            sa.select(w.c.table_name, w.c.watermark, w.c.updated_at))}
    if _exists(conn, wh, t.batches):
        b = t.batches
        merged = {r[0]: int(r[1] or 0) for r in conn.execute(
            sa.select(b.c.table_name, sa.func.sum(b.c.rows_merged))
            .where(b.c.merged_at >= _naive(now - timedelta(hours=1)))
            .group_by(b.c.table_name))}
    out = []
    for table in wh.cfg.tables:
        mark, updated = marks.get(table, (None, None))
        since = int((_naive(now) - updated).total_seconds()) if updated is not None else None
        behind = int(now.timestamp()) - int(mark) if mark is not None else None
        out.append(TableState(
            table, _t(updated), iso(from_epoch(int(mark))) if mark is not None
            else None, behind, since, merged.get(table, 0), since is None or since > limit))
    return out


def _jobs(conn: Connection, wh: Warehouse, now: datetime,
          catalogue: Catalogue) -> tuple[list[JobState], list[LockState]]:
    jobs = {name: JobState(name, spec.schedule, iso(next_slot(spec.schedule, now)))
            for name, spec in catalogue.jobs.items()}
    locks: list[LockState] = []
    t = wh.tables.job_runs
    if not _exists(conn, wh, t):
        return list(jobs.values()), locks
    for name, spec in catalogue.jobs.items():
        rows = list(conn.execute(sa.select(t.c.run_id, t.c.status, t.c.started_at, t.c.error,
                                           t.c.pid, t.c.host).where(t.c.job == name)
                                 .order_by(t.c.run_id.desc()).limit(200)).fetchall())
        if not rows:
            continue
        j = jobs[name]
        j.last_run_id, j.last_status = int(rows[0][0]), rows[0][1]
        j.last_started, j.last_error = _t(rows[0][2]), _first(rows[0][3])
        done = next((r for r in rows if r[1] in FINISHED), None)
        if done is not None and done[1] != "succeeded":
            j.failing_run_id, j.failing_status = int(done[0]), done[1]
            j.failing_error = _first(done[3])
        running = next((r for r in rows if r[1] == "running"), None)
        if running is not None:
            held = int((_naive(now) - running[2]).total_seconds())
            locks.append(LockState(name, int(running[0]), f"run {running[0]}, pid {running[4]} "
                                   f"on {running[5]}", _t(running[2]) or "", held))
        j.stuck = _stuck(rows, running, spec.timeout_seconds)
    return list(jobs.values()), locks


def _stuck(rows: list, running: Any, timeout: int) -> str | None:
    """The newest row is a skip, and the lock had by then been held longer than the job's
    timeout: since the running run started, else since the first of the skips in a row."""
    if rows[0][1] != "skipped":
        return None
    skipped_at = rows[0][2]
    if running is not None and running[2] <= skipped_at:
        since = running[2]
    else:
        streak = [r for r in _leading(rows, "skipped")]
        since = streak[-1][2]
    held = (skipped_at - since).total_seconds()
    if held <= timeout:
        return None
    return (f"run skipped at {_t(skipped_at)}: the lock had been held for {_dur(held)} since "
            f"{_t(since)}, past the job's timeout of {_dur(timeout)}")


def _leading(rows: list, status: str) -> list:
    out = []
    for r in rows:
        if r[1] != status:
            break
        out.append(r)
    return out


def _first(error: str | None) -> str | None:
    return error.splitlines()[0][:300] if error else None


def _checks(conn: Connection, wh: Warehouse) -> tuple[list[CheckState], str | None]:
    t = wh.tables.check_results
    if not _exists(conn, wh, t):
        return [], None
    latest = conn.execute(sa.select(sa.func.max(t.c.checked_at))).scalar()
    if latest is None:
        return [], None
    rows = conn.execute(sa.select(t.c.check_name, t.c.subject, t.c.row_count, t.c.detail,
                                  t.c.sample).where(t.c.checked_at == latest, t.c.status == "fail")
                        .order_by(t.c.check_name, t.c.subject)).fetchall()
    out = []
    for name, subject, count, detail, sample in rows:
        try:
            parsed = json.loads(sample) if sample else []
        except ValueError:
            parsed = []
        out.append(CheckState(name, subject, int(count), detail or "", _t(latest) or "",
                              parsed if isinstance(parsed, list) else []))
    return out, _t(latest)


def _exceptions(conn: Connection, wh: Warehouse, now: datetime,
                max_age: int) -> list[ExceptionGroup]:
    t = wh.tables.exceptions
    if not _exists(conn, wh, t):
        return []
    old = _naive(now - timedelta(seconds=max_age))
    rows = conn.execute(
        sa.select(t.c.exception_type, sa.func.count(), sa.func.min(t.c.detected_at),
                  sa.func.sum(sa.case((t.c.detected_at < old, 1), else_=0)))
        .where(t.c.resolved_at.is_(None)).group_by(t.c.exception_type)
        .order_by(t.c.exception_type)).fetchall()
    return [ExceptionGroup(str(kind), int(n), _t(first) or "",
                           int((_naive(now) - first).total_seconds()), int(over or 0))
            for kind, n, first, over in rows]


def pipeline_status(config: PipelineConfig | str | None = None,
                    warehouse: Warehouse | Database | str | None = None, now: datetime | None = None, *,
                    catalogue: Catalogue | None = None, retries: int | None = None) -> Status:
    """Everything the on-call person looks at first, read in one connection. The warehouse
    not reachable raises WarehouseUnavailable (exit 75) after ``retries`` (default the
    config's)."""
    now = now or utcnow()
    catalogue = catalogue or load_catalogue()
    with using(config, warehouse) as wh:
        cfg = wh.cfg
        limit, max_age = max_lag_seconds(cfg), exception_max_age_seconds(cfg)
        n = cfg.cycle.source_retries if retries is None else retries
        with connect_with_retries(wh.db, retries=n, backoff=cfg.cycle.retry_backoff_seconds
                                  ) as conn:
            tables = _tables(conn, wh, now, limit)
            jobs, locks = _jobs(conn, wh, now, catalogue)
            checks, checks_at = _checks(conn, wh)
            exceptions = _exceptions(conn, wh, now, max_age)
        return Status(iso(now), wh.display, limit, max_age, tables, jobs, checks, checks_at,
                      exceptions, locks)


def render_text(s: Status) -> str:
    """The one screen: a verdict line, then each section as aligned columns."""
    lines = [f"ot status at {s.at} — warehouse {s.warehouse}",
             "HEALTHY" if s.healthy else "BREACHED: " + "; ".join(s.breaches), ""]
    lines += _grid("tables (freshness limit " + _dur(s.max_lag_seconds) + ")",
                   ["table", "last cycle (UTC)", "since", "data behind now", "merged 1h", ""],
                   [[t.table, t.last_cycle_at or "never", _dur(t.since_cycle_seconds),
                     _dur(t.behind_seconds), f"{t.rows_merged_last_hour:,}",
                     "LATE" if t.late else "ok"] for t in s.tables])
    lines += _grid("jobs", ["job", "last run", "status", "started (UTC)", "next (UTC)", "note"],
                   [[j.job, str(j.last_run_id or "-"), j.last_status or "never run",
                     j.last_started or "-", j.next_at,
                     j.stuck or (f"run {j.failing_run_id} {j.failing_status}: "
                                 f"{j.failing_error or ''}"[:90] if j.failing_status else "")]
                    for j in s.jobs])
    lines += _grid(f"checks failing (latest daily monitoring: {s.checks_at or 'never run'})",
                   ["check", "subject", "rows", "detail"],
                   [[c.check, c.subject, str(c.count), c.detail[:80]] for c in s.checks_failing])
    lines += _grid(f"open exceptions (alert after {_dur(s.exception_max_age_seconds)})",
                   ["type", "open", "oldest (UTC)", "age", "past the limit"],
                   [[e.type, str(e.open), e.oldest_detected_at, _dur(e.oldest_age_seconds),
                     str(e.older_than_limit)] for e in s.exceptions])
    lines += _grid("locks held (runs recorded as running)", ["job", "holder", "since", "held"],
                   [[lk.job, lk.holder, lk.since, _dur(lk.held_seconds)] for lk in s.locks])
    return "\n".join(lines).rstrip() + "\n"


def _grid(title: str, head: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return [f"{title}: none", ""]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = [("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
           for r in [head, *rows]]
    return [f"{title}:", *("  " + f for f in fmt), ""]

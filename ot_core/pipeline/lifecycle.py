"""What happens to rows after the merge: the half-year archive lifecycle of the marts
(docs/lifecycle.md) and raw trim (docs/cycle.md#raw-trim).

Raw trim deletes, per raw table, whole batches that are merged and older than the table's
window on the as_of clock (24h; 48h for ECS). A batch that is not merged blocks the trim of
every later one, so a row can never leave raw before it reached its mart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.contract import CONTRACTS, MART_META
from ot_core.db.catalog import HistoryTable
from ot_core.db.schema import EXCEPTIONS_TABLE, mart_name, tables_for
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.failpoints import failpoint
from ot_core.pipeline import periods
from ot_core.pipeline.context import CycleContext
from ot_core.pipeline.control import MERGED, Control
from ot_core.pipeline.exception_log import ROUTING_GAP, exception_state
from ot_core.timeutil import from_epoch, iso

log = logging.getLogger("ot.lifecycle")


def trim_raw(ctx: CycleContext, table: str) -> int:
    """Delete ``table``'s raw batches that are merged and past its window (caller's
    transaction); the rows deleted."""
    window = ctx.table(table).raw_trim_hours * 3600
    first_kept = ctx.control.first_kept_batch(ctx.conn, table, ctx.as_of - window)
    if first_kept is None:
        return 0
    sql = ctx.renderer.render("raw/trim.sql", raw=ctx.names(table).raw)
    deleted = max(ctx.conn.execute(sa.text(sql), {"first_kept_batch": first_kept}).rowcount or 0, 0)
    ctx.backend.after_bulk_change(ctx.conn, ctx.names(table).raw, deleted)
    return deleted


# -- the mart lifecycle (docs/lifecycle.md#steps) -------------------------------------------
#
# Per mart, after every merge of the cycle: reactivation → archive → safety check → trim.
# Transaction boundaries, and why a kill between any two of them is completed by the next
# cycle (proved by tests/test_lifecycle_crash.py with a real SIGKILL):
#
# * reactivation commits on its own. It only removes history rows of keys whose newer
#   version is already in the mart (different _raw_id), and moves an order row back into
#   the mart in one transaction (insert + delete). Rerunning it finds nothing more to do.
# * archive commits on its own. After it, a row may sit in both the mart and its history
#   table with the same _raw_id: reactivation ignores such pairs, the archive guard skips
#   them, and the next trim deletes the mart copy. Nothing is lost; nothing is counted twice
#   once the trim has run.
# * the safety check commits on its own; it is idempotent (one open exception per key).
# * trim + exception resolution commit together; trim deletes only rows verified in history.
# * the reactivation markers (highest batch whose keys were looked at) advance in the LAST
#   transaction, after all three marts. A kill before that replays reactivation over the
#   same batches, which is harmless (see above); so a crashed run never skips a key.

# uti first: the order archive (ecs) depends on which orders left mart_uni_tracking_info.
ORDER = ("uni_tracking_info", "uni_tracking_spath", "ecs_order_info")
ACTIVE_TABLE = "uni_tracking_info"  # an order is active while its state is in this mart
GATED_TABLE = "ecs_order_info"  # archived only for orders no longer active


def marks_table(cfg: PipelineConfig, backend: Backend) -> sa.Table:
    """Per table: the highest batch whose merged keys reactivation has looked at."""
    return tables_for(cfg, backend).marks


@dataclass(frozen=True)
class Crossing:
    """A mart's rows older than the cutoff (crossing.sql): all None when there are none."""
    oldest: int | None = None
    rows: int = 0
    key_min: object = None
    key_max: object = None
    order_min: object = None
    order_max: object = None

    def bounds(self) -> dict:
        return {"key_min": self.key_min, "key_max": self.key_max,
                "order_min": self.order_min, "order_max": self.order_max}


@dataclass
class MartFigures:
    crossing: int = 0  # rows older than the cutoff before the archive (crossing.sql)
    reactivated: int = 0
    restored: int = 0
    archived: int = 0
    exceptions: int = 0
    trimmed: int = 0
    resolved: int = 0
    seconds: float = 0.0


@dataclass
class LifecycleResult:
    as_of: str
    cutoff: str
    tables: dict[str, MartFigures] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def figures(self) -> dict:
        """The dict the cycle reports as ``result.lifecycle``."""
        tot = {k: sum(getattr(f, k) for f in self.tables.values())
               for k in ("reactivated", "restored", "archived", "exceptions", "trimmed", "resolved")}
        return {
            "cutoff": self.cutoff, "seconds": round(self.seconds, 3),
            "rows_archived": tot["archived"], "rows_trimmed": tot["trimmed"],
            "rows_reactivated": tot["reactivated"] + tot["restored"],
            "exceptions_opened": tot["exceptions"], "exceptions_resolved": tot["resolved"],
            "history_tables_created": list(self.created), "warnings": list(self.warnings),
            "tables": {t: {**vars(f), "seconds": round(f.seconds, 3)} for t, f in self.tables.items()},
        }


def _ranges(conn: Connection, cfg: PipelineConfig, control: Control, marks: sa.Table,
            ) -> dict[str, tuple[int, int]]:
    """(marker, upto] per table: the batches merged since reactivation last looked."""
    done = {r.table_name: int(r.batch_id) for r in conn.execute(sa.select(marks))}
    b = control.batches
    merged = b.c.status == MERGED
    per_table = {r.table_name: r for r in conn.execute(
        sa.select(b.c.table_name,
                  sa.func.max(sa.case((merged, b.c.batch_id))).label("merged"),
                  sa.func.min(sa.case((~merged, b.c.batch_id))).label("unmerged"))
        .group_by(b.c.table_name))}
    out = {}
    for table in cfg.tables:
        row = per_table.get(table)
        upto = int(row.merged or 0) if row else 0
        if row is not None and row.unmerged is not None:
            upto = min(upto, int(row.unmerged) - 1)  # never step over an unmerged batch
        marker = done.get(table, 0)
        out[table] = (marker, max(marker, upto))
    return out


def _count(result) -> int:
    return max(result.rowcount or 0, 0)


class _Mart:
    """Renders one mart's lifecycle statements (identifiers only) for one backend."""

    def __init__(self, cfg: PipelineConfig, backend: Backend, table: str):
        self.cfg, self.backend, self.table = cfg, backend, table
        self.r = Renderer(backend)
        contract = CONTRACTS[table]
        self.key = contract.key[0]
        mart_schema = cfg.schemas.mart
        self.ctx = dict(
            mart=backend.qualified(mart_schema, mart_name(table)),
            mart_table_q=self.r.q(mart_name(table)),
            key=self.key, columns=contract.column_names + list(MART_META),
            archive_column=cfg.table(table).archive_column,
            active_mart=(backend.qualified(mart_schema, mart_name(ACTIVE_TABLE))
                         if table == GATED_TABLE else None),
            exceptions=backend.qualified(mart_schema, EXCEPTIONS_TABLE),
            exceptions_table_q=self.r.q(EXCEPTIONS_TABLE),
        )

    def sql(self, step: str, hist: str | None = None, hists: list[str] | None = None) -> str:
        extra: dict[str, Any] = {}
        if hist is not None:
            extra = dict(hist=self.backend.qualified(self.cfg.schemas.mart, hist),
                         hist_table_q=self.r.q(hist))
        if hists is not None:
            extra["hists"] = [self.backend.qualified(self.cfg.schemas.mart, h) for h in hists]
        return self.r.render(f"lifecycle/{step}.sql", **{**self.ctx, **extra})


def render_lifecycle(cfg: PipelineConfig, backend: Backend, table: str,
                     hists: list[str]) -> dict[str, str]:
    """Every lifecycle statement of ``table`` for the given history tables (for the Redshift
    parse and correlation tests, and for an analyst who wants to read what runs)."""
    m = _Mart(cfg, backend, table)
    out = {}
    for h in hists:
        out[f"reactivate:{h}"] = m.sql("reactivate", h)
        if table == GATED_TABLE:
            out[f"restore_ecs:{h}"] = m.sql("restore_ecs", h)
            out[f"restore_ecs_drop_history:{h}"] = m.sql("restore_ecs_drop_history", h)
        out[f"archive:{h}"] = m.sql("archive", h)
        out[f"trim:{h}"] = m.sql("trim", h)
    out["crossing"] = m.sql("crossing")
    out["safety_check"] = m.sql("safety_check", hists=hists)
    if hists:
        out["history_keys"] = render_history_keys(cfg, backend, [
            HistoryTable(0, 1, table, h) for h in hists])
    out["resolve_exceptions"] = m.sql("resolve_exceptions")
    return out


@dataclass
class _Round:
    """What one lifecycle run read once and every mart's steps share."""

    cut: int  # the cutoff, epoch seconds
    now: datetime  # detected/resolved times of exceptions (naive UTC)
    ranges: dict[str, tuple[int, int]]  # batches merged since reactivation last looked
    hists: dict[str, list[HistoryTable]]
    crossing: dict[str, Crossing]
    hist_keys: dict[str, tuple]  # key bounds of every history table holding rows
    next_id: int  # the next exception id
    open_gaps: dict[str, int]  # open routing-gap exceptions per table


def run_lifecycle(ctx: CycleContext) -> LifecycleResult:
    """Reactivation, archive, safety check and trim of every mart at the cycle's instant."""
    conn, cfg, backend, as_of = ctx.conn, ctx.cfg, ctx.backend, ctx.as_of
    started = time.perf_counter()
    cut = periods.cutoff(as_of, cfg.retention_months)
    res = LifecycleResult(as_of=iso(from_epoch(as_of)), cutoff=iso(from_epoch(cut)))
    naive_now = ctx.now().replace(microsecond=0)
    # One read of what exists, shared by rotation and the four steps (fixed cost per cycle).
    with conn.begin():
        marks = marks_table(cfg, backend)  # created with the other control tables
        backend.plan_lifecycle(conn)
        ranges = _ranges(conn, cfg, ctx.control, marks)
        hists = periods.discover(conn, cfg, backend)
        crossing = {t: _crossing(conn, _Mart(cfg, backend, t), cut) for t in cfg.tables}
        oldest = {t: c.oldest for t, c in crossing.items()}
        next_id, open_gaps = exception_state(conn, cfg, backend, ROUTING_GAP)
        hist_keys = _history_keys(conn, cfg, backend, hists)
    if cfg.lifecycle.ensure_periods:
        rot = periods.ensure_periods(conn, cfg, backend, as_of, existing=hists, oldest=oldest)
        res.created = rot.created
        if rot.created:
            with conn.begin():
                hists = periods.discover(conn, cfg, backend)
        for grant in rot.missing_grants:
            res.warnings.append(
                f"history tables cannot be created: the warehouse user lacks {grant}; rows "
                "older than the cutoff stay in the marts under ARCHIVE_ROUTING_GAP exceptions")
            log.warning(res.warnings[-1])
    rnd = _Round(cut, naive_now, ranges, hists, crossing, hist_keys, next_id, open_gaps)
    for table in [t for t in ORDER if t in cfg.tables]:
        t0 = time.perf_counter()
        f = _one_mart(ctx, table, rnd)
        rnd.next_id += f.exceptions
        f.seconds = time.perf_counter() - t0
        res.tables[table] = f
    with conn.begin():
        conn.execute(sa.delete(marks).where(marks.c.table_name.in_(list(ranges))))
        conn.execute(sa.insert(marks).values([
            {"table_name": table, "batch_id": upto, "as_of": as_of, "updated_at": naive_now}
            for table, (_, upto) in ranges.items()]))
    res.seconds = time.perf_counter() - started
    return res


def _one_mart(ctx: CycleContext, table: str, rnd: _Round) -> MartFigures:
    conn, backend = ctx.conn, ctx.backend
    cut, ranges, now, hist_keys = rnd.cut, rnd.ranges, rnd.now, rnd.hist_keys
    hists, crossing = rnd.hists[table], rnd.crossing[table]
    first_id, open_gaps = rnd.next_id, rnd.open_gaps.get(table, 0)
    f = MartFigures()
    m = _Mart(ctx.cfg, backend, table)
    marker, upto = ranges[table]
    # Skip what the data rules out (cheap, and keeps the fixed cost per cycle low): an empty
    # history table holds no key to reactivate, and a period that ends before the oldest row
    # older than the cutoff has no row to archive or trim (a row left by a crash is such a
    # row, so its period is kept). No row older than the cutoff: nothing to archive at all.
    filled = [h for h in hists if h.name in hist_keys]
    # Every transaction below starts with plan_lifecycle: a backend may tune how its
    # planner treats these short statements (PostgreSQL: no JIT compilation).
    # 1. reactivation (+ moving reactivated orders back into the order mart)
    with conn.begin():
        backend.plan_lifecycle(conn)
        if upto > marker:
            for h in filled:
                lo, hi = hist_keys[h.name]
                f.reactivated += _count(conn.execute(sa.text(m.sql("reactivate", h.name)), {
                    "marker": marker, "upto": upto, "hist_key_min": lo, "hist_key_max": hi}))
    if table == GATED_TABLE and ACTIVE_TABLE in ranges:
        a_marker, a_upto = ranges[ACTIVE_TABLE]
        if a_upto > a_marker:
            for h in filled:
                lo, hi = hist_keys[h.name]
                p = {"marker": a_marker, "upto": a_upto, "hist_key_min": lo, "hist_key_max": hi}
                with conn.begin():
                    backend.plan_lifecycle(conn)
                    f.restored += _count(conn.execute(sa.text(m.sql("restore_ecs", h.name)), p))
                    conn.execute(sa.text(m.sql("restore_ecs_drop_history", h.name)), p)
        if f.restored:  # rows came back into this mart: what crosses the cutoff is read again
            with conn.begin():
                backend.plan_lifecycle(conn)
                crossing = _crossing(conn, m, cut)
    oldest, f.crossing = crossing.oldest, crossing.rows
    # 2. archive, period by period, only periods that start before the cutoff
    old = [h for h in hists if periods.Period(h.year, h.half).start < cut
           and oldest is not None and periods.Period(h.year, h.half).end > oldest]
    with conn.begin():
        backend.plan_lifecycle(conn)
        for h in old:
            span = periods.Period(h.year, h.half)
            f.archived += _count(conn.execute(sa.text(m.sql("archive", h.name)), {
                "period_start": span.start, "period_end": span.end, "cutoff": cut,
                **crossing.bounds()}))
    failpoint("lifecycle_after_archive", table)
    # 3. safety check: one open exception per old row not verified in history (none can be
    #    missing when no row is older than the cutoff). A row can only have been archived
    #    into the table of its own period, so only the periods of `old` are probed.
    with conn.begin():
        backend.plan_lifecycle(conn)
        missing = [p.table(table) for p in periods.periods_between(oldest or cut, cut - 1)
                   if p.table(table) not in {h.name for h in hists}]
        note = (f"older than the cutoff {iso(from_epoch(cut))} and not in history; "
                f"missing history tables: {', '.join(missing) or 'none'}; kept in the mart")
        if oldest is not None and oldest < cut:
            f.exceptions = _count(conn.execute(
                sa.text(m.sql("safety_check", hists=[h.name for h in old])), {
                    "first_id": first_id, "source_table": table, "exception_type": ROUTING_GAP,
                    "detected_at": now, "notes": note[:1000], "cutoff": cut,
                    "oldest": oldest, **crossing.bounds()}))
    failpoint("lifecycle_before_trim", table)
    # 4. trim of rows verified in history, and resolution of exceptions it settles
    with conn.begin():
        backend.plan_lifecycle(conn)
        for h in old:
            span = periods.Period(h.year, h.half)
            f.trimmed += _count(conn.execute(sa.text(m.sql("trim", h.name)), {
                "period_start": span.start, "period_end": span.end, "cutoff": cut, "oldest": oldest}))
        if open_gaps:  # those opened by this cycle's safety check are still in the mart
            f.resolved = _count(conn.execute(sa.text(m.sql("resolve_exceptions")), {
                "resolved_at": now, "source_table": table, "exception_type": ROUTING_GAP,
                "cutoff": cut}))
    return f


def _crossing(conn: Connection, m: _Mart, cut: int) -> Crossing:
    row = conn.execute(sa.text(m.sql("crossing")), {"cutoff": cut}).one()
    return Crossing(None if row.oldest is None else int(row.oldest), int(row.crossing or 0),
                    row.key_min, row.key_max, row.order_min, row.order_max)


def _history_keys(conn: Connection, cfg: PipelineConfig, backend: Backend,
                  hists: dict[str, list[HistoryTable]]) -> dict[str, tuple]:
    """(key_min, key_max) of every history table holding rows; empty ones are left out."""
    tables = [h for hs in hists.values() for h in hs]
    if not tables:
        return {}
    sql = render_history_keys(cfg, backend, tables)
    rows = conn.execute(sa.text(sql), {f"name_{i}": h.name for i, h in enumerate(tables)})
    return {r.table_name: (r.key_min, r.key_max) for r in rows if r.key_min is not None}


def render_history_keys(cfg: PipelineConfig, backend: Backend,
                        tables: list[HistoryTable]) -> str:
    return Renderer(backend).render("lifecycle/history_keys.sql", hists=[
        {"relation": backend.qualified(cfg.schemas.mart, h.name),
         "key": CONTRACTS[h.table].key[0]} for h in tables])

"""One cycle: the steps of docs/cycle.md#steps in order, nothing else.

Merge the batches a crashed run left loaded → extract every table's window and land each
as one batch (raw rows + batch record + watermark), all tables in ONE transaction → merge
each batch (mart change + 'merged' flag in one transaction per table). Then the mart
lifecycle, then raw trim (docs/cycle.md#transaction-boundaries).

Why these transaction boundaries: a kill after the landing commits leaves 'loaded' batches
and advanced watermarks; the next run merges them first and reads nothing twice. A kill
(or a value that breaks the contract, in any table) before it commits leaves nothing, and
the same windows are read again. Either way the rerun ends exactly where one clean run
would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime

from ot_core.config import PipelineConfig, resolve_config
from ot_core.db.connect import Database, opened, with_retries
from ot_core.db.schema import WATERMARKS_TABLE
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import ClockError, SourceUnavailable
from ot_core.failpoints import failpoint
from ot_core.pipeline import lifecycle
from ot_core.pipeline.context import CycleContext
from ot_core.pipeline.control import Control
from ot_core.pipeline.extract import Window, check_source, plan_window, read_window
from ot_core.pipeline.land import land_batch
from ot_core.pipeline.merge import merge_batch
from ot_core.timeutil import from_epoch, iso, parse_as_of, parse_duration, to_epoch

log = logging.getLogger("ot.cycle")


@dataclass
class TableRun:
    table: str
    lower: int | None = None
    upper: int | None = None
    batch_id: int | None = None
    rows_extracted: int = 0
    rows_loaded: int = 0
    rows_merged: int = 0
    recovered_batches: int = 0
    raw_trimmed: int = 0
    seconds: float = 0.0


@dataclass
class CycleResult:
    as_of: str
    tables: dict[str, TableRun] = field(default_factory=dict)
    lifecycle: dict | None = None
    seconds: float = 0.0
    # set when nothing was done because a later cycle had already read past as_of (a
    # scheduler's slot that a cycle run by hand covered)
    covered_by: str | None = None

    def rows(self) -> dict[str, dict]:
        """Figures per table, for the audit record (the job-runs row and the notebook)."""
        return {t: {k: v for k, v in asdict(r).items() if k != "table"} for t, r in self.tables.items()}

    def to_text(self) -> str:
        """The per-table figures as an aligned text table (the CLI's; no pandas import)."""
        head = ["table", "rows read", "landed", "merged", "raw trimmed", "seconds"]
        body = [[r.table, f"{r.rows_extracted:,}", f"{r.rows_loaded:,}", f"{r.rows_merged:,}",
                 f"{r.raw_trimmed:,}", f"{r.seconds:.2f}"] for r in self.tables.values()]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                    for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                         for row in [head, *body])


def newest_watermark(conn, cfg: PipelineConfig, wh: Warehouse) -> int | None:
    """The furthest any table has been read (None before the first cycle); reads only."""
    if WATERMARKS_TABLE not in wh.backend.list_tables(conn, cfg.schemas.control, WATERMARKS_TABLE):
        return None
    marks = Control.for_config(cfg, wh.backend).watermarks_all(conn)
    return max(marks.values()) if marks else None


def guard_clock(as_of: int, source_clock: int, newest: int | None, skew: int, *,
                allow_past: bool = False) -> None:
    """Refuse, before anything is written, an instant the source has not reached yet (a
    typo'd year would move watermarks past every row still to come, and the lifecycle would
    archive the whole mart) or one behind what was already read (unless ``allow_past``)."""
    if as_of > source_clock + skew:
        raise ClockError(
            f"as_of {iso(from_epoch(as_of))} is ahead of the source's clock "
            f"{iso(from_epoch(source_clock))} (allowed skew {skew} s, cycle.clock_skew_seconds); "
            "nothing was read or written. Use an instant at or before the source's clock.")
    if newest is not None and as_of < newest and not allow_past:
        raise ClockError(
            f"as_of {iso(from_epoch(as_of))} is earlier than what the warehouse has already "
            f"read (watermark {iso(from_epoch(newest))}); nothing was read or written. Run at "
            "or after the watermark, or pass --allow-past for a deliberate run in the past "
            "(it reads nothing new and judges the lifecycle at that instant).")


def run_cycle(
    as_of: str | datetime | None = None, *, config: PipelineConfig | str | None = None,
    source: Database | str | None = None, warehouse: Warehouse | Database | str | None = None,
    allow_past: bool = False, source_clock: int | None = None, new_schemas: bool = False,
    scheduled: bool = False,
) -> CycleResult:
    """Run one cycle at ``as_of`` (default now). Raises a TerminalError or TransientError.

    ``as_of`` may not be ahead of the source's own clock (plus ``cycle.clock_skew_seconds``)
    nor, unless ``allow_past``, behind the newest watermark; the window read stops at the
    source's clock, so a watermark never moves past what was read. ``source_clock`` replaces
    the clock read from the source where a caller simulates time (tests, what-if runs).
    ``new_schemas`` confirms a change of the config's schema names (see ``db.schema``).
    ``scheduled``: ``as_of`` is a scheduler's slot; when a cycle already read past it (one
    run by hand in between), there is nothing to do and the result says so, instead of the
    refusal a person typing a past instant gets.
    """
    at = parse_as_of(as_of)
    cfg = resolve_config(config)
    with opened("source", source) as src, \
            using(cfg, warehouse, new_schemas=new_schemas) as wh:
        if scheduled:
            with wh.connect() as conn, conn.begin():
                newest = newest_watermark(conn, cfg, wh)
            if newest is not None and to_epoch(at) <= newest:
                log.info("cycle as_of=%s: already read up to %s, nothing to do", iso(at),
                         iso(from_epoch(newest)))
                return CycleResult(as_of=iso(at), covered_by=iso(from_epoch(newest)))
        return _run_cycle(at, cfg, src, wh, allow_past, source_clock)


def _run_cycle(at: datetime, cfg: PipelineConfig, src: Database, wh: Warehouse, allow_past: bool,
               source_clock: int | None) -> CycleResult:
    started = time.perf_counter()
    upper = to_epoch(at)
    result = CycleResult(as_of=iso(at))
    log.info("cycle as_of=%s started", result.as_of,
             extra={"event": "cycle_started", "as_of": result.as_of})
    # every table against the contract, and the source's clock, before any warehouse write
    state = check_source(cfg, src)
    source_clock = state.clock if source_clock is None else source_clock
    read_until = min(upper, source_clock)
    with wh.connect() as conn:
        ctx = CycleContext.open(conn, cfg, wh.backend, upper)
        with conn.begin():
            guard_clock(upper, source_clock, newest_watermark(conn, cfg, wh),
                        cfg.cycle.clock_skew_seconds, allow_past=allow_past)
        with conn.begin():
            wh.ensure(conn)

        # 1. finish what a killed run left: merge loaded batches in order
        for table in cfg.tables:
            t0 = time.perf_counter()
            run = result.tables.setdefault(table, TableRun(table))
            with conn.begin():
                pending = ctx.control.pending(conn, table)
            for batch_id in pending:
                with conn.begin():
                    run.rows_merged += merge_batch(ctx, table, batch_id)
                run.recovered_batches += 1
            run.seconds += time.perf_counter() - t0
        windows = _plan_windows(ctx, read_until, state.null_cdc, result)
        first = any(w.first for w in windows.values())
        with wh.backend.first_load(conn) if first else nullcontext():
            # 2-3. extract every table's window and land each as one batch, all in ONE
            #      transaction: a value that breaks the contract in the last table leaves
            #      no table written and no watermark moved
            landed = _extract_and_land(ctx, src, wh.display, windows, result)
            for table in cfg.tables:
                failpoint("after_load", table)
            # 4. merge each batch (mart change + 'merged' flag in one transaction per table)
            for table in cfg.tables:
                t0 = time.perf_counter()
                landed_id = landed.get(table)
                if landed_id is not None:
                    with conn.begin():
                        merged = merge_batch(ctx, table, landed_id)
                    result.tables[table].rows_merged += merged
                    log.info("%s: batch %d merged, %d rows in %.2f s", table, landed_id, merged,
                             time.perf_counter() - t0,
                             extra={"event": "table_merged", "table": table,
                                    "batch_id": landed_id, "rows": merged,
                                    "seconds": round(time.perf_counter() - t0, 3)})
                failpoint("after_merge", table)
                result.tables[table].seconds += time.perf_counter() - t0

            # 5. mart lifecycle (reactivation, archive, safety check, trim), after every
            #    mart has merged; its own transaction boundaries are explained in lifecycle.py
            if cfg.lifecycle.enabled:
                t0 = time.perf_counter()
                result.lifecycle = lifecycle.run_lifecycle(ctx).figures()
                log.info("lifecycle done in %.2f s", time.perf_counter() - t0,
                         extra={"event": "lifecycle", "figures": result.lifecycle,
                                "seconds": round(time.perf_counter() - t0, 3)})
        # 6. raw trim, on the as_of clock, only of merged batches
        for table in cfg.tables:
            t0 = time.perf_counter()
            with conn.begin():
                result.tables[table].raw_trimmed = lifecycle.trim_raw(ctx, table)
            result.tables[table].seconds += time.perf_counter() - t0
    result.seconds = time.perf_counter() - started
    merged_rows = {t: r.rows_merged for t, r in result.tables.items()}
    log.info("cycle as_of=%s done in %.2fs: %s", result.as_of, result.seconds, merged_rows,
             extra={"event": "cycle_finished", "as_of": result.as_of,
                    "seconds": round(result.seconds, 3), "rows": sum(merged_rows.values()),
                    "rows_by_table": merged_rows,
                    "batch_ids": {t: r.batch_id for t, r in result.tables.items()
                                  if r.batch_id is not None}})
    return result


def _progress(table: str, started: float, every: float = 2.0) -> Callable[[int], None]:
    """Log rows read so far and the rate (INFO: ``ot -v``), at most every ``every`` seconds:
    a backfill of millions of rows shows it is moving."""
    last = [started]

    def report(rows: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= every:
            last[0] = now
            log.info("%s: %s rows read so far (%.0f rows/s)", table, f"{rows:,}",
                     rows / max(now - started, 1e-6))

    return report


def _plan_windows(ctx: CycleContext, upper: int, null_cdc: frozenset[str],
                  result: CycleResult) -> dict[str, Window]:
    """Each table's window up to ``upper`` from its watermark (tables already covered have
    none); tables in ``null_cdc`` also read the rows whose CDC value is NULL."""
    windows = {}
    with ctx.conn.begin():
        for table in ctx.cfg.tables:
            window = plan_window(table, ctx.table(table), ctx.control.watermark(ctx.conn, table),
                                 upper, null_cdc=table in null_cdc)
            if window is not None:
                windows[table] = window
                result.tables[table].lower, result.tables[table].upper = window.lower, window.upper
    return windows


def _extract_and_land(ctx: CycleContext, src: Database, warehouse: str,
                      windows: dict[str, Window], result: CycleResult) -> dict[str, int | None]:
    """Read every table's window and land it as one batch per table, in one warehouse
    transaction (retried whole on a transient source failure); the batch ids landed."""
    if not windows:
        return {}
    cfg = ctx.cfg

    def attempt() -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        spent: dict[str, float] = {}
        # the bulk load is entered before the transaction: it releases what it staged
        # only once the landing has committed (or rolled back)
        with src.engine.connect() as sconn, ctx.batch_load() as load, ctx.conn.begin():
            for table, window in windows.items():
                t0 = time.perf_counter()
                chunks = read_window(sconn, src.backend, cfg, window)
                landed = land_batch(ctx, window, chunks, load=load,
                                    on_chunk=_progress(table, t0))
                run = result.tables[table]
                run.rows_extracted, run.rows_loaded = landed.rows_extracted, landed.rows_loaded
                run.batch_id = out[table] = landed.batch_id
                spent[table] = time.perf_counter() - t0
                failpoint("after_land", table)
                log.info("%s: %d rows read, %d landed in %.2f s (%.0f rows/s)", table,
                         landed.rows_extracted, landed.rows_loaded, spent[table],
                         landed.rows_extracted / max(spent[table], 1e-6),
                         extra={"event": "table_landed", "table": table,
                                "batch_id": landed.batch_id, "rows": landed.rows_loaded,
                                "rows_extracted": landed.rows_extracted,
                                "seconds": round(spent[table], 3)})
        for table, seconds in spent.items():  # only the attempt that committed counts
            result.tables[table].seconds += seconds
        return out

    return with_retries(attempt, what=f"extracting from the source {src.display} into the "
                        f"warehouse {warehouse}",
                        retries=cfg.cycle.source_retries,
                        backoff=cfg.cycle.retry_backoff_seconds, error=SourceUnavailable)


def catch_up(
    until: str | datetime | None = None, *, start: str | datetime | None = None,
    step: str | int | None = None, config: PipelineConfig | str | None = None,
    source: Database | str | None = None, warehouse: Warehouse | Database | str | None = None,
    on_cycle: Callable[[CycleResult, int, int], None] | None = None,
    source_clock: int | None = None, new_schemas: bool = False,
) -> list[CycleResult]:
    """Run cycles from the newest watermark (or ``start``) to ``until`` in ``step`` increments.

    The first cycle of an empty warehouse is a backfill at ``start`` (or at ``until``).
    """
    cfg = resolve_config(config)
    with opened("source", source) as src, \
            using(cfg, warehouse, new_schemas=new_schemas) as wh:
        return _catch_up(until, start, step, cfg, src, wh, on_cycle, source_clock)


def _catch_up(until, start, step, cfg: PipelineConfig, src: Database, wh: Warehouse,
              on_cycle, source_clock: int | None) -> list[CycleResult]:
    end = to_epoch(parse_as_of(until))
    step_s = parse_duration(step or cfg.cycle.interval)
    control = Control.for_config(cfg, wh.backend)
    read_clock = check_source(cfg, src).clock
    clock = read_clock if source_clock is None else source_clock
    with wh.connect() as conn, conn.begin():
        guard_clock(end, clock, newest_watermark(conn, cfg, wh),
                    cfg.cycle.clock_skew_seconds)
        wh.ensure(conn)
        marks = control.watermarks_all(conn)
    known = [marks[t] for t in cfg.tables if t in marks]
    if len(known) < len(cfg.tables):
        first = to_epoch(parse_as_of(start)) if start is not None else end
        points = [min(first, end)]
    else:
        points = []
        # tables a killed cycle left behind catch up in the first step (a wider window)
        first = max(known)
    nxt = (points[-1] if points else first) + step_s
    while nxt < end:
        points.append(nxt)
        nxt += step_s
    if not points or points[-1] != end:
        points.append(end)
    results = []
    for i, p in enumerate(points):
        res = run_cycle(from_epoch(p), config=cfg, source=src, warehouse=wh,
                        source_clock=source_clock)
        results.append(res)
        if on_cycle:
            on_cycle(res, i + 1, len(points))
    return results

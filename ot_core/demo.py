"""``ot demo``: seed the embedded source, catch up with cycles, show what landed where.

A demo is meant to be run again: a second run advances the existing demo to now (the
simulated source gains the orders of the time that passed, the warehouse catches up with
cycles) and says so, or says there is nothing new; it never fails because the source is
already simulated. ``fresh=True`` deletes the embedded files first and starts over.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ot_core.config import PipelineConfig, load_config
from ot_core.db.connect import Database, open_database, url_from_env
from ot_core.db.schema import mart_name
from ot_core.db.warehouse import Warehouse
from ot_core.errors import TransientError, UsageError
from ot_core.pipeline.cycle import catch_up, newest_watermark
from ot_core.resources import data_dir
from ot_core.simulate import SimulationState, foreign_orders, simulate, simulation_state
from ot_core.timeutil import from_epoch, iso, to_epoch, utcnow

DAY = 86400
NEW, ADVANCED, CURRENT = "new", "advanced", "current"


@dataclass
class DemoResult:
    source: str
    warehouse: str
    simulated: dict | None  # what this run simulated (None: the source was already current)
    cycles: int
    batches: int
    mart_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    data_dir: str = ""
    outcome: str = NEW  # NEW, ADVANCED (an existing demo moved to now) or CURRENT (nothing new)
    since: str | None = None  # where an existing demo's source stood before this run
    until: str = ""  # where the source stands now
    removed: list[str] = field(default_factory=list)  # files --fresh deleted


def mart_counts(cfg: PipelineConfig, wh) -> dict[str, int]:
    out = {}
    with wh.engine.connect() as conn:
        for t in cfg.tables:
            q = wh.backend.qualified(cfg.schemas.mart, mart_name(t))
            out[mart_name(t)] = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {q}")).scalar_one())
    return out


def run_demo(days: int = 21, orders_per_day: int = 2_000, step: str = "6h", seed: int = 7,
             config: str | None = None, progress: Callable[..., Any] | None = None,
             fresh: bool = False) -> DemoResult:
    """A new demo, or the existing one advanced to now (``fresh``: delete it first)."""
    started = time.perf_counter()
    cfg = load_config(config)
    removed = [str(p) for p in start_over()] if fresh else []
    with open_database("source") as src, Warehouse.open(cfg) as wh:
        res = _demo(cfg, src, wh, days, orders_per_day, step, seed, progress)
    res.removed = removed
    res.seconds = round(time.perf_counter() - started, 1)
    return res


def embedded_files() -> list[Path]:
    """The demo's files in the data folder: the source and warehouse databases and what
    their engines and the job runner keep beside them (journal, WAL, job locks, spool)."""
    out: list[Path] = []
    for role in ("source", "warehouse"):
        path = Path(str(url_from_env(role).database))
        if path.parent.is_dir():
            out += sorted(p for p in path.parent.iterdir()
                          if p.name == path.name or p.name.startswith((f"{path.name}.",
                                                                       f"{path.name}-")))
    return out


def start_over() -> list[Path]:
    """Delete the embedded demo files (``ot demo --fresh``); refuses for server URLs and
    while a job holds one of the warehouse's lock files."""
    from filelock import FileLock, Timeout

    named = [v for v in ("OT_SOURCE_URL", "OT_WAREHOUSE_URL") if os.environ.get(v)]
    if named:
        raise UsageError(f"--fresh deletes only the embedded files in the data folder, and "
                         f"{' and '.join(named)} {'is' if len(named) == 1 else 'are'} set: "
                         "unset it to use the embedded files, or empty those databases yourself")
    files = embedded_files()
    for path in files:
        if path.suffix == ".lock":
            try:
                with FileLock(str(path), timeout=0):
                    pass
            except Timeout:
                raise TransientError(f"a job is running and holds {path}: let it finish "
                                     "(see `ot runs`), then run `ot demo --fresh` again") from None
    for path in files:
        path.unlink(missing_ok=True)
    return files


def _demo(cfg: PipelineConfig, src: Database, wh: Warehouse, days: int, orders_per_day: int,
          step: str, seed: int, progress) -> DemoResult:
    now = to_epoch(utcnow())
    until = now - now % 900  # the last 15-minute boundary
    state = simulation_state(src)
    if state is None:
        _refuse_a_foreign_source(src)
        sim = simulate(from_epoch(until), seed=seed, start=from_epoch(until - days * DAY),
                       orders_per_day=orders_per_day, source=src)
        outcome, since, target = NEW, None, until
    else:
        outcome, since, target, sim = _advance(state, until, src)
    with wh.connect() as conn:
        newest = newest_watermark(conn, cfg, wh)
    results = []
    if newest is None or newest < target:
        first = from_epoch(target - (days - 1) * DAY) if newest is None else None
        results = catch_up(from_epoch(target), start=first, step=step, config=cfg, source=src,
                           warehouse=wh, on_cycle=progress)
    batches = sum(1 for r in results for t in r.tables.values() if t.batch_id is not None)
    return DemoResult(
        source=src.display, warehouse=wh.display, simulated=sim.__dict__ if sim else None,
        cycles=len(results), batches=batches, mart_rows=mart_counts(cfg, wh.db),
        data_dir=str(data_dir()), outcome=outcome, since=since, until=iso(from_epoch(target)))


def _advance(state: SimulationState, until: int, src: Database):
    """An existing demo's source moved on to ``until`` with its own seed and rate (or left
    as it is when it is already there)."""
    since = iso(from_epoch(state.until))
    if state.until >= until:
        return CURRENT, since, state.until, None
    sim = simulate(from_epoch(until), seed=state.seed, source=src)
    return ADVANCED, since, until, sim


def _refuse_a_foreign_source(src: Database) -> None:
    """A source holding orders that ``ot simulate`` did not write is someone's real data:
    the demo writes synthetic orders only into a source of its own."""
    with src.engine.connect() as conn:
        if not foreign_orders(conn):
            return
    raise UsageError(f"the source {src.display} holds orders that `ot simulate` did not write: "
                     "ot demo writes synthetic orders only into a source of its own; unset "
                     "OT_SOURCE_URL (the embedded file) or point it at an empty database")


@contextmanager
def cycle_bar() -> Iterator[Callable[..., None]]:
    """A progress bar over catch-up cycles (on a terminal only): rows and rate of the last."""
    from tqdm import tqdm

    bar = tqdm(total=None, unit="cycle", desc="cycles", disable=None)

    def tick(res, i, n):
        bar.total = n
        rows = sum(t.rows_extracted for t in res.tables.values())
        bar.set_postfix_str(f"last: {rows:,} rows, {rows / max(res.seconds, 1e-6):,.0f} rows/s",
                            refresh=False)
        bar.update(1)

    try:
        yield tick
    finally:
        bar.close()


def describe(res: DemoResult) -> str:
    lines = []
    if res.removed:
        lines.append(f"removed    {len(res.removed)} files of the previous demo (--fresh)")
    sim = res.simulated
    if res.outcome == NEW and sim:
        lines.append(f"new demo   {sim['orders']:,} orders, {sim['path_events']:,} path events "
                     f"simulated from {sim['start']} to {sim['until']}")
    elif res.outcome == ADVANCED and sim:
        lines.append(f"advanced   the existing demo from {res.since} to {res.until}: "
                     f"{sim['orders']:,} new orders, {sim['path_events']:,} path events")
    else:
        lines.append(f"up to date the existing demo already reaches {res.until}: no new "
                     "orders to simulate yet (the clock moves in 15-minute steps)")
    if res.cycles:
        lines.append(f"cycles     {res.cycles} ({res.batches} batches landed and merged)")
    else:
        lines.append("cycles     none needed: the warehouse has read everything up to then")
    lines += [f"source     {res.source}", f"warehouse  {res.warehouse}"]
    for name, n in res.mart_rows.items():
        lines.append(f"  {name:<28} {n:>10,} rows")
    lines.append(f"time       {res.seconds:.1f} s")
    lines.append(f"files      {res.data_dir}  (OT_DATA_DIR)")
    if res.outcome != NEW:
        lines.append("`ot demo --fresh` deletes this demo and starts a new one")
    return "\n".join(lines)


__all__ = ["DemoResult", "cycle_bar", "describe", "embedded_files", "mart_counts", "run_demo", "start_over"]

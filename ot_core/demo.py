"""``ot demo``: seed the embedded source, catch up with cycles, show what landed where."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from ot_core.config import PipelineConfig, load_config
from ot_core.db.connect import Database, open_database
from ot_core.db.schema import mart_name
from ot_core.db.warehouse import Warehouse
from ot_core.pipeline.cycle import catch_up
from ot_core.resources import data_dir
from ot_core.simulate import simulate
from ot_core.timeutil import from_epoch, iso, to_epoch, utcnow


@dataclass
class DemoResult:
    source: str
    warehouse: str
    simulated: dict
    cycles: int
    batches: int
    mart_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    data_dir: str = ""


def mart_counts(cfg: PipelineConfig, wh) -> dict[str, int]:
    out = {}
    with wh.engine.connect() as conn:
        for t in cfg.tables:
            q = wh.backend.qualified(cfg.schemas.mart, mart_name(t))
            out[mart_name(t)] = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {q}")).scalar_one())
    return out


def run_demo(days: int = 21, orders_per_day: int = 2_000, step: str = "6h", seed: int = 7,
             config: str | None = None, progress=None) -> DemoResult:
    started = time.perf_counter()
    cfg = load_config(config)
    with open_database("source") as src, Warehouse.open(cfg) as wh:
        return _demo(cfg, src, wh, days, orders_per_day, step, seed, progress, started)


def _demo(cfg: PipelineConfig, src: Database, wh: Warehouse, days: int, orders_per_day: int,
          step: str, seed: int, progress, started: float) -> DemoResult:
    now = to_epoch(utcnow())
    until = now - now % 900  # the last 15-minute boundary
    sim = simulate(from_epoch(until), seed=seed, start=from_epoch(until - days * 86400),
                   orders_per_day=orders_per_day, source=src)
    results = catch_up(from_epoch(until), start=from_epoch(until - (days - 1) * 86400), step=step,
                       config=cfg, source=src, warehouse=wh, on_cycle=progress)
    batches = sum(1 for r in results for t in r.tables.values() if t.batch_id is not None)
    res = DemoResult(
        source=src.display, warehouse=wh.display, simulated=sim.__dict__, cycles=len(results),
        batches=batches, mart_rows=mart_counts(cfg, wh.db),
    )
    res.data_dir = str(data_dir())
    res.seconds = round(time.perf_counter() - started, 1)
    return res


def describe(res: DemoResult) -> str:
    lines = [
        f"source     {res.source}",
        f"warehouse  {res.warehouse}",
        f"simulated  {res.simulated['orders']:,} orders, {res.simulated['path_events']:,} path events "
        f"up to {res.simulated['until']}",
        f"cycles     {res.cycles} ({res.batches} batches landed and merged)",
    ]
    for name, n in res.mart_rows.items():
        lines.append(f"  {name:<28} {n:>10,} rows")
    lines.append(f"time       {res.seconds:.1f} s")
    lines.append(f"files      {res.data_dir}  (OT_DATA_DIR)")
    return "\n".join(lines)


__all__ = ["DemoResult", "describe", "iso", "mart_counts", "run_demo"]

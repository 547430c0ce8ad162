"""Opt-in refresh of ECS rows that changed at the source after they were extracted.

Why: ``ecs_order_info`` has no ``updated_at`` (docs/compare.md#ecs-drift), so the
15-minute cycle, which follows ``add_time``, never sees a later change to an order. The monthly comparison
measures that drift; this module repairs it when a person asks (``ot refresh-ecs``), never
automatically. It finds exactly the drifted rows with the comparison engine, keeps those of
orders still active (present in ``mart_uni_tracking_info``), re-reads them from the source
by key, and lands + merges them as one ordinary batch (``land`` / ``merge``): the batch is
recorded, its rows get new ``_raw_id`` values so the merge prefers them, and the watermark
stays where it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import sqlalchemy as sa

from ot_core.config import PipelineConfig
from ot_core.contract import ECS
from ot_core.db.connect import Database, opened
from ot_core.db.schema import mart_name
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import TerminalError
from ot_core.pipeline.batches import typed_rows
from ot_core.pipeline.context import CycleContext
from ot_core.pipeline.control import Control
from ot_core.pipeline.extract import Window
from ot_core.pipeline.land import land_batch
from ot_core.pipeline.merge import merge_batch
from ot_core.quality.compare import Scope, Settings, Side, compare_sides, warehouse_side
from ot_core.timeutil import iso, parse_as_of, to_epoch

TABLE = ECS.name
KEYS_PER_QUERY = 1000


@dataclass
class RefreshResult:
    since: str | None
    drifted: int = 0  # ECS rows whose source content differs from the warehouse's
    active: int = 0  # of those, orders still in mart_uni_tracking_info
    refreshed: int = 0  # rows merged by the refresh batch
    batch_id: int | None = None
    sample_keys: list[int] = field(default_factory=list)


def _in_chunks(keys: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(keys), KEYS_PER_QUERY):
        yield keys[i:i + KEYS_PER_QUERY]


def active_orders(wh: Database, cfg: PipelineConfig, keys: list[int]) -> list[int]:
    """The subset of ``keys`` whose order is in ``mart_uni_tracking_info`` (still tracked)."""
    rel = wh.backend.qualified(cfg.schemas.mart, mart_name("uni_tracking_info"))
    stmt = sa.text(f"SELECT order_id FROM {rel} WHERE order_id IN :keys").bindparams(
        sa.bindparam("keys", expanding=True))
    out: list[int] = []
    with wh.engine.connect() as conn:
        for part in _in_chunks(keys):
            out += [int(r[0]) for r in conn.execute(stmt, {"keys": part})]
    return sorted(out)


def read_source_rows(src: Database, keys: list[int]) -> Iterator[pa.Table]:
    cols = ", ".join(src.backend.quote(c) for c in ECS.column_names)
    rel = src.backend.qualified(None, TABLE)
    stmt = sa.text(f"SELECT {cols} FROM {rel} WHERE order_id IN :keys ORDER BY order_id"
                   ).bindparams(sa.bindparam("keys", expanding=True))
    with src.engine.connect() as conn:
        for part in _in_chunks(keys):
            rows = conn.execute(stmt, {"keys": part}).all()
            yield typed_rows(rows, ECS.column_names, ECS)


def refresh_ecs(since: str | datetime | None = None, *, config: PipelineConfig | str | None = None,
                source: Database | str | None = None,
                warehouse: Warehouse | Database | str | None = None,
                dry_run: bool = False) -> RefreshResult:
    """Re-extract drifted ECS rows of active orders (``add_time >= since``) and merge them."""
    lower = to_epoch(parse_as_of(since)) if since is not None else 0
    with using(config, warehouse) as wh, opened("source", source) as src:
        return _refresh(wh, src, since, lower, dry_run)


def _refresh(wh: Warehouse, src: Database, since, lower: int, dry_run: bool) -> RefreshResult:
    cfg = wh.cfg
    control = Control.for_config(cfg, wh.backend)
    with wh.connect() as conn:
        with conn.begin():
            wh.ensure(conn)
            mark = control.watermark(conn, TABLE)
            target = warehouse_side(conn, cfg, wh.db, TABLE)
    if mark is None:
        raise TerminalError(f"{TABLE} was never extracted (no watermark): run a cycle first")
    scope = Scope(column="add_time", lower=lower, upper=mark)
    c = cfg.compare
    report = compare_sides(ECS, Side(src, "source", ((None, TABLE),)), target, scope,
                           Settings(c.first_segments, c.fanout, c.leaf_rows, c.sample_keys))
    drifted = report.keys.get("changed", [])
    keys = active_orders(wh.db, cfg, drifted) if drifted else []
    result = RefreshResult(since=iso(parse_as_of(since)) if since is not None else None,
                           drifted=len(drifted), active=len(keys), sample_keys=keys[:10])
    if dry_run or not keys:
        return result
    window = Window(TABLE, "refresh", None, mark, None)  # upper = watermark: it does not move
    with wh.connect() as conn:
        ctx = CycleContext.open(conn, cfg, wh.backend, mark)
        with conn.begin():
            landed = land_batch(ctx, window, read_source_rows(src, keys))
        if landed.batch_id is not None:
            with conn.begin():
                result.refreshed = merge_batch(ctx, TABLE, landed.batch_id)
        result.batch_id = landed.batch_id
    return result

"""Repair: what a comparison found different is re-read from the source by key, landed as an
ordinary audited batch and merged, so the warehouse ends equal to the source
(docs/compare.md#repair).

Timestamp CDC cannot see every change: a commit later than the lookback, an order edited
after creation (it has no update time), a warehouse written by an older version. A
comparison finds those rows; a repair heals them:

1. the keys: those a kept comparison found (``--from-compare RUN``), or a new comparison of
   the table over a month or key range;
2. under the cycle's lock (a repair and a cycle never overlap), the source rows of those keys
   are read by key and landed as one batch (strategy ``repair``; the watermark does not
   move), and merged: the row read last wins, so each repaired key ends holding the
   source's current version;
3. the repaired keys leave every history table (a key lives in exactly one place), keys the
   source no longer has are deleted from the mart and history (counted on the batch as
   ``rows_deleted``), and the lifecycle runs at the last cycle's instant, archiving again
   what is older than the cutoff;
4. the repaired keys are compared again, row by row: what is still different is reported.

Everything up to the lifecycle is one warehouse transaction: a repair killed midway leaves
nothing. Run twice, the second finds nothing to do. ``dry_run`` reads and reports only.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ot_core.config import PipelineConfig
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database, opened
from ot_core.db.schema import mart_name
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import JobLocked, TerminalError, UsageError
from ot_core.pipeline import lifecycle
from ot_core.pipeline.batches import typed_rows
from ot_core.pipeline.context import CycleContext
from ot_core.pipeline.control import MERGED, Control
from ot_core.pipeline.extract import Window
from ot_core.pipeline.land import land_batch
from ot_core.pipeline.merge import merge_batch
from ot_core.quality.compare.bisect import CompareReport, diff_rows
from ot_core.quality.compare.run import load_keys, resolve_table, run_compare
from ot_core.quality.compare.sides import Scope, Side, SideReader
from ot_core.timeutil import iso, utcnow

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("ot.repair")

KEYS_PER_QUERY = 1000
# the cycle lock's expiry for a repair on a warehouse without advisory locks (a crashed
# repair frees it after this long)
LOCK_SECONDS = 3600


@dataclass
class RepairResult:
    table: str
    compare_run: str | None  # the comparison whose keys were repaired
    found: dict[str, int] = field(default_factory=dict)  # differing keys by kind
    reread: int = 0  # source rows read by key and landed
    deleted: int = 0  # keys the source no longer has, removed from mart and history
    merged: int = 0
    batch_id: int | None = None
    still_different: int = 0  # after the repair, compared row by row
    sample_keys: list[int] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def keys(self) -> int:
        return sum(self.found.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in self.found.items() if n) or "none"
        if not self.keys:
            return f"{self.table}: nothing to repair" + (" [dry run]" if self.dry_run else "")
        if self.dry_run:
            return (f"{self.table}: {self.keys} differing key(s) ({kinds}) would be re-read; "
                    f"sample keys {self.sample_keys} [dry run: nothing written]")
        return (f"{self.table}: repaired {self.keys} key(s) ({kinds}) in batch {self.batch_id}: "
                f"{self.reread} re-read from the source, {self.deleted} deleted (gone at the "
                f"source), {self.merged} merged; still different after the repair: "
                f"{self.still_different}; {self.seconds:.2f} s")


def repair(table: str, *, month: str | None = None, key_range: str | None = None,
           from_compare: str | None = None, kinds: Sequence[str] | None = None,
           dry_run: bool = False, config: PipelineConfig | str | None = None,
           source: Database | str | None = None,
           warehouse: Warehouse | Database | str | None = None) -> RepairResult:
    """``ot repair``: repair ``table`` over a month or key range (a new comparison), or the
    keys kept comparison ``from_compare`` found. ``kinds`` limits the categories repaired
    (default: every one: missing, extra, changed, duplicate, pending, future)."""
    if from_compare and (month or key_range):
        raise UsageError("--from-compare repairs the keys that comparison found: give no "
                         "--month or --key-range with it")
    name = resolve_table(table)
    with using(config, warehouse) as wh, opened("source", source) as src:
        if from_compare:
            kept_table, keys = load_keys(wh.cfg, wh.db, from_compare)
            if kept_table != name:
                raise UsageError(f"comparison {from_compare} is of {kept_table}, not {name}")
        else:
            report = run_compare(name, month=month, key_range=key_range, config=wh.cfg,
                                 source=src, warehouse=wh, fail=False)
            keys, from_compare = report.keys, report.run_id
        if kinds is not None:
            keys = {k: v for k, v in keys.items() if k in kinds}
        return repair_keys(wh, src, name, keys, compare_run=from_compare, dry_run=dry_run)


def repair_keys(wh: Warehouse, src: Database, table: str, keys: dict[str, list[int]], *,
                compare_run: str | None = None, dry_run: bool = False,
                wait_seconds: float = 0.0) -> RepairResult:
    """Re-read ``keys`` (by kind) of ``table`` from the source and make the warehouse hold
    exactly what the source holds for them (see the module docstring). A cycle in progress
    is waited for up to ``wait_seconds``, then the repair gives up (JobLocked, exit 75)."""
    started = time.perf_counter()
    wanted = sorted({int(k) for ks in keys.values() for k in ks})
    res = RepairResult(table, compare_run, {k: len(set(v)) for k, v in keys.items() if v},
                       sample_keys=wanted[:10], dry_run=dry_run)
    if dry_run or not wanted:
        return res
    cfg = wh.cfg
    holder = f"'ot repair' of {table}, pid {os.getpid()}, started {iso(utcnow())}"
    with _cycle_lock(wh, holder, wait_seconds), wh.connect() as conn:
        with conn.begin():
            wh.ensure(conn)
            mark = Control.for_config(cfg, wh.backend).watermark(conn, table)
        if mark is None:
            raise TerminalError(f"{table} was never extracted (no watermark): run a cycle "
                                "before a repair")
        ctx = CycleContext.open(conn, cfg, wh.backend, mark)  # the last cycle's instant
        found: set[int] = set()
        with ctx.batch_load() as load, conn.begin():
            window = Window(table, "repair", None, mark, None)  # the watermark stays
            landed = land_batch(ctx, window, _read_by_key(src, cfg, table, wanted, found),
                                load=load)
            res.reread = landed.rows_extracted
            if landed.batch_id is not None:
                res.merged = merge_batch(ctx, table, landed.batch_id)
                res.batch_id = landed.batch_id
            res.deleted = _settle_places(ctx, table, found, set(wanted) - found,
                                         landed.batch_id)
        if cfg.lifecycle.enabled:
            lifecycle.run_lifecycle(ctx)
    res.still_different = _verify(wh, src, table, wanted)
    res.seconds = time.perf_counter() - started
    log.info("%s", res.summary())
    return res


@contextmanager
def _cycle_lock(wh: Warehouse, holder: str, wait_seconds: float) -> Iterator[None]:
    """The cycle's lock, waited for up to ``wait_seconds`` while a cycle holds it."""
    deadline = time.monotonic() + wait_seconds
    with ExitStack() as stack:
        while True:
            try:
                stack.enter_context(wh.hold("cycle", LOCK_SECONDS, holder))
                break
            except JobLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        yield


def _read_by_key(src: Database, cfg: PipelineConfig, table: str, keys: list[int],
                 found: set[int]) -> Iterator[pa.Table]:
    """The source rows of ``keys``, typed like a cycle's; ``found`` collects the keys read."""
    contract = cfg.landed(table)
    key = contract.key[0]
    cols = ", ".join(src.backend.quote(c) for c in contract.column_names)
    stmt = sa.text(f"SELECT {cols} FROM {src.backend.qualified(None, table)} "
                   f"WHERE {src.backend.quote(key)} IN :keys ORDER BY {src.backend.quote(key)}"
                   ).bindparams(sa.bindparam("keys", expanding=True))
    position = contract.column_names.index(key)
    with src.engine.connect() as conn:
        for i in range(0, len(keys), KEYS_PER_QUERY):
            rows = conn.execute(stmt, {"keys": keys[i:i + KEYS_PER_QUERY]}).all()
            found.update(int(r[position]) for r in rows)
            yield typed_rows(rows, contract.column_names, contract)


def _settle_places(ctx: CycleContext, table: str, repaired: set[int], gone: set[int],
                   batch_id: int | None) -> int:
    """Repaired keys live in the mart alone (they leave history; the lifecycle archives
    them again if they are old); keys the source no longer has leave mart and history.
    Returns the keys deleted for good."""
    cfg, backend, conn = ctx.cfg, ctx.backend, ctx.conn
    key = backend.quote(cfg.landed(table).key[0])
    hists = [backend.qualified(cfg.schemas.mart, h.name)
             for h in history_tables(conn, cfg, backend, table)]
    mart = backend.qualified(cfg.schemas.mart, mart_name(table))

    def delete(relations: list[str], keys: set[int]) -> None:
        ordered = sorted(keys)
        for rel in relations:
            stmt = sa.text(f"DELETE FROM {rel} WHERE {key} IN :keys").bindparams(
                sa.bindparam("keys", expanding=True))
            for i in range(0, len(ordered), KEYS_PER_QUERY):
                conn.execute(stmt, {"keys": ordered[i:i + KEYS_PER_QUERY]})

    delete(hists, repaired)
    delete([mart, *hists], gone)
    if batch_id is not None and gone:
        b = ctx.control.batches
        conn.execute(sa.update(b).where(b.c.batch_id == batch_id).values(rows_deleted=len(gone)))
    elif gone:  # nothing re-read, only deletions: the batch row records them all the same
        batch = ctx.control.next_batch_id(conn)
        ctx.control.record_batch(
            conn, batch_id=batch, table_name=table, strategy="repair", as_of=ctx.as_of,
            lower_bound=None, upper_bound=ctx.as_of, raw_id_min=None, raw_id_max=None,
            rows_extracted=0, rows_loaded=0, rows_merged=0, rows_deleted=len(gone),
            status=MERGED, loaded_at=ctx.now(), merged_at=ctx.now())
    return len(gone)


def _verify(wh: Warehouse, src: Database, table: str, keys: list[int]) -> int:
    """Rows still different for ``keys`` (compared row by row on both sides)."""
    cfg = wh.cfg
    contract = cfg.landed(table)
    with wh.connect() as conn:
        rels = [(cfg.schemas.mart, mart_name(table))] + [
            (cfg.schemas.mart, h.name) for h in history_tables(conn, cfg, wh.backend, table)]
    report = CompareReport(table, "source", "warehouse", "repaired keys")
    ranges = _ranges(keys)
    with ExitStack() as stack:
        readers = []
        for side in (Side(src, "source", ((None, table),)), Side(wh.db, "warehouse", tuple(rels))):
            conn = stack.enter_context(side.db.engine.connect())
            reader = SideReader(side, contract, Scope(), conn, segments=False)
            stack.callback(reader.close)
            readers.append(reader)
        diff_rows(readers[0].rows(ranges), readers[1].rows(ranges), report, Counter())
    return report.missing + report.extra + report.changed


def _ranges(keys: list[int]) -> list[tuple[int, int]]:
    """Consecutive keys joined into half-open ranges."""
    out: list[tuple[int, int]] = []
    for k in sorted(set(keys)):
        if out and out[-1][1] == k:
            out[-1] = (out[-1][0], k + 1)
        else:
            out.append((k, k + 1))
    return out


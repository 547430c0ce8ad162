"""Land one extraction as one raw batch.

Within a single warehouse transaction: the chunks are appended to ``<table>_raw`` with
``_raw_id`` (increasing in extraction order), ``_batch_id`` and ``_extracted_at``; re-read
overlap rows that are already the mart's version are dropped; the batch is recorded; the
watermark moves to the window's upper bound. A crash before the commit leaves nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ot_core.config import PipelineConfig
from ot_core.contract import CONTRACTS, RAW_META
from ot_core.db.schema import names
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.engines.strategies import BatchLoad
from ot_core.pipeline.context import CycleContext
from ot_core.pipeline.control import LOADED
from ot_core.pipeline.extract import Window

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("ot.cycle")


@dataclass
class Landed:
    batch_id: int | None
    rows_extracted: int
    rows_loaded: int


def render_drop_unchanged_overlap(cfg: PipelineConfig, backend: Backend, table: str) -> str:
    """The statement that drops re-read rows already in the mart (the timestamp overlap, or
    every row of a repeated full refresh); a function of its own so the Redshift tests check
    the very text the cycle runs."""
    contract = CONTRACTS[table]
    nm = names(cfg, backend, table)
    r = Renderer(backend)
    return r.render(
        "land/drop_unchanged_overlap.sql",
        raw=nm.raw, raw_table_q=r.q(nm.raw_table), mart=nm.mart,
        key=list(contract.key), compare=[c for c in contract.column_names if c not in contract.key],
        cdc_column=cfg.table(table).cdc.column,
    )


def raw_columns(table: str) -> list[str]:
    """The raw table's columns in its declared order (``db.schema.raw_table``): the order a
    batch is handed to the bulk load in, since a COPY from Parquet loads columns by position."""
    return [*CONTRACTS[table].column_names, *RAW_META]


def land_batch(ctx: CycleContext, window: Window, chunks: Iterable[pa.Table], *,
               load: BatchLoad, on_chunk: Callable[[int], None] | None = None) -> Landed:
    """Append the window's chunks to the raw table as one batch through the engine's bulk
    ``load`` (``CycleContext.batch_load``), record it and move the watermark, in the
    caller's transaction."""
    conn, cfg, backend, control = ctx.conn, ctx.cfg, ctx.backend, ctx.control
    now = ctx.now()
    table = window.table
    nm = ctx.names(table)
    batch_id = control.next_batch_id(conn)
    next_raw = control.next_raw_id(conn, table)
    first_raw = next_raw
    extracted = 0
    order = raw_columns(table)
    for chunk in chunks:
        n = chunk.num_rows
        if n == 0:
            continue
        if not backend.holds_nul_in_text:
            chunk = strip_nul(chunk, table)
        load.add(conn, cfg.schemas.raw, nm.raw_table,
                 with_raw_meta(chunk, next_raw, batch_id, now).select(order))
        next_raw += n
        extracted += n
        if on_chunk is not None:
            on_chunk(extracted)
    if extracted:
        load.finish(conn, cfg.schemas.raw, nm.raw_table)

    backend.after_bulk_change(conn, nm.raw, extracted)
    loaded = extracted
    if extracted and window.overlap_end is not None:
        sql = render_drop_unchanged_overlap(cfg, backend, table)
        backend.plan_for_batch(conn, extracted)
        dropped = conn.execute(sa.text(sql), {"batch_id": batch_id, "overlap_end": window.overlap_end}).rowcount
        loaded = extracted - max(dropped or 0, 0)

    if loaded:
        control.record_batch(
            conn, batch_id=batch_id, table_name=table, strategy=window.strategy, as_of=ctx.as_of,
            lower_bound=window.lower, upper_bound=window.upper, raw_id_min=first_raw,
            raw_id_max=next_raw - 1, rows_extracted=extracted, rows_loaded=loaded, status=LOADED,
            loaded_at=now,
        )
    control.set_watermark(conn, table, window.upper, batch_id if loaded else None, now)
    return Landed(batch_id if loaded else None, extracted, loaded)


def strip_nul(chunk: pa.Table, table: str) -> pa.Table:
    """``chunk`` without NUL characters in its strings, for a warehouse whose text cannot hold
    them (PostgreSQL would refuse the whole batch, and with it every table of the cycle):
    each column that had some is named in a warning with the keys of its rows
    (docs/cycle.md#nul-characters). A chunk without any is returned untouched, found by a
    scan of the string buffers."""
    import numpy as np
    import pyarrow as pa

    key = CONTRACTS[table].key[0]
    for i, field in enumerate(chunk.schema):
        if not pa.types.is_string(field.type):
            continue
        column = chunk.column(i).combine_chunks()
        data = column.buffers()[2]
        if data is None or not np.any(np.frombuffer(data, dtype=np.uint8) == 0):
            continue
        import pyarrow.compute as pc

        has = pc.fill_null(pc.match_substring(column, "\x00"), False)
        keys = chunk.column(key).filter(has).to_pylist()
        log.warning("%s.%s: NUL characters removed from %d row(s) (the warehouse's text cannot "
                    "hold them; the source keeps them), %s %s", table, field.name, len(keys),
                    key, keys[:10])
        chunk = chunk.set_column(i, field, pc.replace_substring(column, "\x00", ""))
    return chunk


def with_raw_meta(chunk: pa.Table, first_raw: int, batch_id: int, now: datetime) -> pa.Table:
    """The chunk with ``_raw_id`` (extraction order), ``_batch_id`` and ``_extracted_at``."""
    import numpy as np
    import pyarrow as pa

    from ot_core.pipeline.batches import from_numpy

    n = chunk.num_rows
    stamp = np.datetime64(now.replace(tzinfo=None), "us").astype(np.int64)
    return (chunk
            .append_column(RAW_META[0], from_numpy(
                np.arange(first_raw, first_raw + n, dtype=np.int64), pa.int64()))
            .append_column(RAW_META[1], from_numpy(np.full(n, batch_id, dtype=np.int64),
                                                   pa.int64()))
            .append_column(RAW_META[2], from_numpy(np.full(n, stamp, dtype=np.int64),
                                                   pa.timestamp("us"))))

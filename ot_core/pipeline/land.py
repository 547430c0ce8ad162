"""Land one extraction as one raw batch.

Within a single warehouse transaction: the chunks are appended to ``<table>_raw`` with
``_raw_id`` (increasing in extraction order), ``_batch_id`` and ``_extracted_at``; re-read
overlap rows that are already the mart's version are dropped; the batch is recorded; the
watermark moves to the window's upper bound. A crash before the commit leaves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.contract import CONTRACTS, RAW_META
from ot_core.db.schema import names
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.pipeline.control import LOADED, Control
from ot_core.pipeline.extract import Window


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


def land_batch(
    conn: Connection, cfg: PipelineConfig, backend: Backend, control: Control, window: Window,
    chunks: Iterable[pd.DataFrame], *, as_of: int, now: datetime,
) -> Landed:
    table = window.table
    contract = CONTRACTS[table]
    nm = names(cfg, backend, table)
    batch_id = control.next_batch_id(conn)
    next_raw = control.next_raw_id(conn, table)
    first_raw = next_raw
    columns = contract.column_names + list(RAW_META)
    extracted = 0
    for chunk in chunks:
        n = len(chunk)
        if n == 0:
            continue
        chunk = chunk.assign(
            _raw_id=pd.array(range(next_raw, next_raw + n), dtype="Int64"),
            _batch_id=batch_id,
            _extracted_at=now.replace(tzinfo=None),
        )
        backend.bulk_insert(conn, cfg.schemas.raw, nm.raw_table, columns, chunk)
        next_raw += n
        extracted += n

    loaded = extracted
    if extracted and window.overlap_end is not None:
        sql = render_drop_unchanged_overlap(cfg, backend, table)
        backend.plan_for_batch(conn, extracted)
        dropped = conn.execute(sa.text(sql), {"batch_id": batch_id, "overlap_end": window.overlap_end}).rowcount
        loaded = extracted - max(dropped or 0, 0)

    if loaded:
        control.record_batch(
            conn, batch_id=batch_id, table_name=table, strategy=window.strategy, as_of=as_of,
            lower_bound=window.lower, upper_bound=window.upper, raw_id_min=first_raw,
            raw_id_max=next_raw - 1, rows_extracted=extracted, rows_loaded=loaded, status=LOADED,
            loaded_at=now.replace(tzinfo=None),
        )
    control.set_watermark(conn, table, window.upper, batch_id if loaded else None,
                          now.replace(tzinfo=None))
    return Landed(batch_id if loaded else None, extracted, loaded)

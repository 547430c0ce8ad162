"""Control tables: batches and watermarks.

A batch row is written in the same transaction as its raw rows and the watermark that
follows it, so either all three exist or none does. Merging flips the batch to 'merged' in
the same transaction as the mart change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.db.schema import tables_for
from ot_core.engines import Backend

LOADED = "loaded"
MERGED = "merged"


@dataclass
class Control:
    batches: sa.Table
    watermarks: sa.Table

    @classmethod
    def for_config(cls, cfg: PipelineConfig, backend: Backend) -> Control:
        t = tables_for(cfg, backend)
        return cls(batches=t.batches, watermarks=t.watermarks)

    # -- watermarks ----------------------------------------------------------------------
    def watermark(self, conn: Connection, table: str) -> int | None:
        w = self.watermarks
        return conn.execute(sa.select(w.c.watermark).where(w.c.table_name == table)).scalar()

    def set_watermark(self, conn: Connection, table: str, value: int, batch_id: int | None,
                      now: datetime) -> None:
        w = self.watermarks
        conn.execute(sa.delete(w).where(w.c.table_name == table))
        conn.execute(sa.insert(w).values(table_name=table, watermark=value, batch_id=batch_id,
                                         updated_at=now))

    def watermarks_all(self, conn: Connection) -> dict[str, int]:
        w = self.watermarks
        return {r.table_name: r.watermark for r in conn.execute(sa.select(w))}

    # -- batches -------------------------------------------------------------------------
    def next_batch_id(self, conn: Connection) -> int:
        b = self.batches
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(b.c.batch_id), 0))).scalar_one()) + 1

    def next_raw_id(self, conn: Connection, table: str) -> int:
        b = self.batches
        top = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(b.c.raw_id_max), 0)).where(b.c.table_name == table)
        ).scalar_one()
        return int(top) + 1

    def record_batch(self, conn: Connection, **values) -> None:
        conn.execute(sa.insert(self.batches).values(**values))

    def pending(self, conn: Connection, table: str) -> list[int]:
        b = self.batches
        rows = conn.execute(
            sa.select(b.c.batch_id)
            .where(b.c.table_name == table, b.c.status == LOADED)
            .order_by(b.c.batch_id)
        )
        return [r[0] for r in rows]

    def mark_merged(self, conn: Connection, batch_id: int, rows: int, now: datetime) -> None:
        b = self.batches
        conn.execute(
            sa.update(b).where(b.c.batch_id == batch_id)
            .values(status=MERGED, rows_merged=rows, merged_at=now)
        )

    def first_kept_batch(self, conn: Connection, table: str, cutoff_as_of: int) -> int | None:
        """Lowest batch id of ``table`` that raw trim must keep (unmerged or inside window).

        ``None`` means the table has no batch at all.
        """
        b = self.batches
        keep = conn.execute(
            sa.select(sa.func.min(b.c.batch_id)).where(
                b.c.table_name == table,
                sa.or_(b.c.status != MERGED, b.c.as_of >= cutoff_as_of),
            )
        ).scalar()
        if keep is not None:
            return int(keep)
        top = conn.execute(
            sa.select(sa.func.max(b.c.batch_id)).where(b.c.table_name == table)
        ).scalar()
        return None if top is None else int(top) + 1

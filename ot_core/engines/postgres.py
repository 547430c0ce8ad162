"""PostgreSQL: the server warehouse tested in CI.

Bulk loads use COPY FROM STDIN (CSV with an explicit NULL marker, so an empty string stays
an empty string). Staging temp tables are ANALYZEd so the merge's key lookups use the
mart's primary-key index: cost follows the batch, not the mart.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Connection

from ot_core.engines import Backend, register

NULL_MARK = "\\N"
# Staged batches up to this size are merged by key-index lookups (a backfill is not).
KEY_LOOKUP_MAX_ROWS = 200_000


@register
class PostgresBackend(Backend):
    name = "postgresql"
    roles = frozenset({"warehouse"})

    def bulk_insert(
        self, conn: Connection, schema: str | None, table: str, columns: Sequence[str],
        frame: pd.DataFrame,
    ) -> int:
        if frame.empty:
            return 0
        buf = io.StringIO()
        frame[list(columns)].to_csv(buf, index=False, header=False, na_rep=NULL_MARK)
        buf.seek(0)
        cols = ", ".join(self.quote(c) for c in columns)
        sql = (
            f"COPY {self.qualified(schema, table)} ({cols}) FROM STDIN "
            f"WITH (FORMAT csv, NULL '{NULL_MARK}')"
        )
        with conn.connection.driver_connection.cursor() as cur:
            cur.copy_expert(sql, buf)
        return len(frame)

    def raw_indexes(self, schema: str, table: str) -> list[str]:
        name = self.quote(f"ix_{table}_batch")
        return [f"CREATE INDEX IF NOT EXISTS {name} ON {self.qualified(schema, table)} (_batch_id)"]

    def mart_indexes(self, schema: str, table: str, archive_column: str) -> list[str]:
        target = self.qualified(schema, table)
        return [
            f"CREATE INDEX IF NOT EXISTS {self.quote(f'ix_{table}_archive')} ON {target} "
            f"({self.quote(archive_column)})",
            f"CREATE INDEX IF NOT EXISTS {self.quote(f'ix_{table}_batch')} ON {target} (_batch_id)",
        ]

    def serialize_ids(self, conn: Connection, schema: str | None, table: str) -> None:
        # blocks other writers (not readers) of the table until this transaction ends
        conn.exec_driver_sql(f"LOCK TABLE {self.qualified(schema, table)} IN SHARE ROW EXCLUSIVE MODE")

    def after_stage(self, conn: Connection, temp_table: str, rows: int) -> None:
        conn.exec_driver_sql(f"ANALYZE {self.quote(temp_table)}")
        self.plan_for_batch(conn, rows)

    def plan_for_batch(self, conn: Connection, rows: int) -> None:
        if 0 <= rows <= KEY_LOOKUP_MAX_ROWS:
            # A steady-state batch touches a small share of the mart, but with 10K of 1M keys
            # the planner still prefers hashing the whole mart: the cost would follow the
            # mart. For the rest of this transaction (one merge or one landing) probe the
            # mart's key index instead.
            conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
            conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
            conn.exec_driver_sql("SET LOCAL jit = off")

    def plan_lifecycle(self, conn: Connection) -> None:
        # Index-range estimates on a mart whose old rows are trimmed every cycle count the
        # dead entries, so a statement that reads a few thousand rows is costed like one that
        # reads 100K and gets JIT-compiled: the compiling took longer than the running.
        # Join methods stay the planner's: history tables filled this cycle have no
        # statistics yet, and with hash joins off it nested-looped over them row by row.
        conn.exec_driver_sql("SET LOCAL jit = off")

    def engine_kwargs(self) -> dict:
        return {"pool_pre_ping": True}

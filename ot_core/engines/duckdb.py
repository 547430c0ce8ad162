"""DuckDB: the embedded warehouse.

Bulk loads hand a DataFrame to DuckDB directly (a registered view, then INSERT ... SELECT),
inside the caller's transaction. No declared primary keys (see ``Backend``); no SQLAlchemy
reflection (duckdb-engine's breaks on SQLAlchemy >= 2.0.55): the catalog is read with
``information_schema`` queries like every other warehouse.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal

import pandas as pd
from sqlalchemy.engine import Connection

from ot_core.engines import Backend, register

_names = itertools.count()


@register
class DuckDBBackend(Backend):
    name = "duckdb"
    roles = frozenset({"warehouse"})
    declares_primary_keys = False

    def bulk_insert(
        self, conn: Connection, schema: str | None, table: str, columns: Sequence[str],
        frame: pd.DataFrame,
    ) -> int:
        if frame.empty:
            return 0
        raw = conn.connection.driver_connection
        # DuckDB 2 refuses register() while an earlier result is unfinished (SQLAlchemy's
        # .scalar() reads one row and stops): finish it first. No-op when nothing is pending.
        raw.complete()
        view = f"ot_chunk_{next(_names)}"
        raw.register(view, _decimals_as_text(frame[list(columns)]))
        try:
            cols = ", ".join(self.quote(c) for c in columns)
            raw.execute(
                f"INSERT INTO {self.qualified(schema, table)} ({cols}) SELECT {cols} FROM {view}"
            )
        finally:
            raw.unregister(view)
        return len(frame)


def _decimals_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Hand DECIMAL columns to DuckDB as exact text.

    DuckDB infers an object column of Decimals from a sample of its values (DECIMAL(4,2) for
    a chunk starting with small prices), and the first wider value then fails the insert.
    Text is cast to the target column's own DECIMAL(p, s) by the INSERT, exactly.
    """
    out = frame
    for name in frame.columns:
        col = frame[name]
        if col.dtype != object:
            continue
        present = col.dropna()
        if len(present) and isinstance(present.iloc[0], Decimal):
            if out is frame:
                out = frame.copy()
            out[name] = pd.Series(
                [format(v, "f") if isinstance(v, Decimal) else None for v in col.tolist()],
                dtype=object, index=col.index)
    return out

"""DuckDB: the embedded warehouse.

Bulk loads hand a DataFrame to DuckDB directly (a registered view, then INSERT ... SELECT),
inside the caller's transaction. No declared primary keys (see ``Backend``); no SQLAlchemy
reflection (duckdb-engine's breaks on SQLAlchemy >= 2.0.55): the catalog is read with
``information_schema`` queries like every other warehouse.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Connection

from . import Backend, register

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
        raw.register(view, frame[list(columns)])
        try:
            cols = ", ".join(self.quote(c) for c in columns)
            raw.execute(
                f"INSERT INTO {self.qualified(schema, table)} ({cols}) SELECT {cols} FROM {view}"
            )
        finally:
            raw.unregister(view)
        return len(frame)

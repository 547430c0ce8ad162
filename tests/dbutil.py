"""One short-lived engine per statement: what tests use to read or poke a real database
behind the code under test (and release it at once, so DuckDB files stay free)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def run_sql(url: str, sql: str, params: dict[str, Any] | None = None):
    """Rows for a query, the row count for anything else; committed."""
    eng = sa.create_engine(url)
    try:
        with eng.begin() as c:
            res = c.execute(sa.text(sql), params or {})
            return res.all() if res.returns_rows else res.rowcount
    finally:
        eng.dispose()


def scalar(url: str, sql: str, params: dict[str, Any] | None = None):
    return run_sql(url, sql, params)[0][0]

"""One short-lived engine per statement: what tests use to read or poke a real database
behind the code under test (and release it at once, so DuckDB files stay free)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def dml_role(pg_url: str, schemas: tuple[str, ...]) -> Iterator[str]:
    """A PostgreSQL login role granted only reads and writes on the tables of ``schemas``
    (what a pipeline user may be given); yields its URL, drops the role afterwards."""
    import uuid

    from conftest import _dispose_all

    role = f"ot_dml_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    db = sa.engine.make_url(pg_url).database
    try:
        with admin.connect() as c:
            c.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            c.exec_driver_sql(f"GRANT CONNECT, TEMP ON DATABASE {db} TO {role}")
            for s in schemas:
                c.exec_driver_sql(f"GRANT USAGE ON SCHEMA {s} TO {role}")
                c.exec_driver_sql(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {role}")
        yield sa.engine.make_url(pg_url).set(username=role).render_as_string(False)
    finally:
        _dispose_all()
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP OWNED BY {role}")
            c.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()

"""MySQL / MariaDB: the production source, read through pymysql (always available).

Reads stream with an unbuffered server-side cursor, so a backfill of any size keeps memory
flat. ``list_tables``/``list_columns`` use the URL's database (``DATABASE()``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import Backend, register


@register
class MySQLBackend(Backend):
    name = "mysql"
    roles = frozenset({"source"})
    has_schemas = False

    def list_tables(self, conn: Connection, schema: str | None, prefix: str = "") -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() ORDER BY table_name"
            )
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def list_columns(self, conn: Connection, schema: str | None, table: str) -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = :t ORDER BY ordinal_position"
            ),
            {"t": table},
        )
        return [r[0] for r in rows]

    def engine_kwargs(self) -> dict:
        return {"pool_pre_ping": True, "pool_recycle": 3600}

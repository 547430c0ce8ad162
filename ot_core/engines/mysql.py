"""MySQL / MariaDB: the production source.

Read by connectorx, or through pymysql's unbuffered cursor where connectorx cannot (see
``pipeline/readers.py``); ``list_tables``/``list_columns`` use the URL's database
(``DATABASE()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.engines.base import Backend
from ot_core.engines.strategies import NULL_MARK, ChecksumDialect, SourceColumn

if TYPE_CHECKING:
    from ot_core.contract import Column


class MySQLChecksum(ChecksumDialect):
    text_type = "CHAR"
    int_type = "SIGNED"
    # a constant MariaDB folds once; CHAR(0 USING utf8mb4) was evaluated for every row
    nul = "_utf8mb4 X'00'"

    def field(self, column: Column, ref: str) -> str:
        if isinstance(column.type, sa.Integer):
            # CONCAT and COALESCE render an integer column as its decimal text already; the
            # two casts cost a third of the canonical text (bench/README.md#compare)
            return f"COALESCE({ref}, '{NULL_MARK}')"
        return super().field(column, ref)

    def concat(self, parts: Sequence[str]) -> str:
        return "CONCAT(" + ", ".join(parts) + ")"

    def hash28(self, text: str) -> str:
        return f"CAST(CONV(SUBSTRING(MD5({text}), 1, 7), 16, 10) AS UNSIGNED)"

    def intdiv(self, a: str, b: str) -> str:
        return f"(({a}) DIV {b})"


class MySQLBackend(Backend):
    name = "mysql"
    checksum_class = MySQLChecksum
    roles = frozenset({"source"})
    has_schemas = False
    extra = "mysql"
    clock_sql = "SELECT UNIX_TIMESTAMP()"

    def epoch_type(self) -> sa.types.TypeEngine:
        from sqlalchemy.dialects import mysql

        return mysql.INTEGER(unsigned=True)

    def list_tables(self, conn: Connection, schema: str | None, prefix: str = "") -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() ORDER BY table_name"
            )
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def source_columns(self, conn: Connection, table: str) -> list[SourceColumn]:
        rows = conn.execute(sa.text(
            "SELECT column_name, data_type, column_type, numeric_precision, numeric_scale, "
            "character_maximum_length, is_nullable FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = :t ORDER BY ordinal_position"),
            {"t": table})
        return [_mysql_column(*r) for r in rows]

    def list_columns(self, conn: Connection, schema: str | None, table: str) -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = :t ORDER BY ordinal_position"
            ),
            {"t": table},
        )
        return [r[0] for r in rows]

    @classmethod
    def engine_kwargs(cls) -> dict:
        return {"pool_pre_ping": True, "pool_recycle": 3600}

    def connectorx_url(self, url: sa.engine.URL) -> str | None:
        return url.set(drivername="mysql", query={}).render_as_string(hide_password=False)

    def spare_connections(self, conn: Connection) -> int | None:
        # the session value is the account's MAX_USER_CONNECTIONS where one is set (else the
        # global limit, 0 for none); a user sees its own threads without PROCESS
        try:
            limit, used = conn.execute(sa.text(
                "SELECT @@max_user_connections, (SELECT COUNT(*) FROM "
                "information_schema.processlist WHERE user = "
                "SUBSTRING_INDEX(CURRENT_USER(), '@', 1))")).one()
        except sa.exc.DBAPIError:  # a server that will not say: connectorx's own attempt
            return None            # then finds out (MySQL keeps the transaction going)
        return None if not limit else max(0, int(limit) - int(used))


_MYSQL_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32,
                   "bigint": 64}


def _mysql_column(name: str, data_type: str, column_type: str, precision: Any, scale: Any,
                  length: Any, is_nullable: str) -> SourceColumn:
    kind_of = str(data_type).lower()
    common: dict[str, Any] = dict(name=name, declared=str(column_type),
                                  nullable=str(is_nullable) == "YES")
    if kind_of in _MYSQL_INT_BITS:
        bits = _MYSQL_INT_BITS[kind_of] + (1 if "unsigned" in str(column_type).lower() else 0)
        return SourceColumn(kind="integer", bits=bits, **common)
    if kind_of in ("decimal", "numeric"):
        return SourceColumn(kind="decimal", precision=int(precision), scale=int(scale or 0),
                            **common)
    if kind_of in ("varchar", "char", "text", "tinytext", "mediumtext", "longtext"):
        return SourceColumn(kind="string", length=None if length is None else int(length),
                            **common)
    if kind_of in ("float", "double", "real"):
        return SourceColumn(kind="float", **common)
    return SourceColumn(kind="other", **common)


"""MySQL / MariaDB: the production source.

Two readers, same typed result (``frames.typed_frame`` runs on either):

* **connectorx** (the ``fast`` extra), chosen automatically when importable: rows are decoded
  in native code, several times faster than pymysql on a backfill. It cannot stream one
  statement in pieces, so the window is read in *keyset pages*: ``ORDER BY`` columns of the
  extract statement, ``LIMIT chunk_rows``, the next page starting after the last row read.
  Memory stays bounded by one page whatever the window.
* **pymysql**, always available (``OT_SOURCE_READER=pymysql`` forces it): one statement read
  through an unbuffered server-side cursor, also flat in memory.

``list_tables``/``list_columns`` use the URL's database (``DATABASE()``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
import sqlglot
from sqlalchemy.engine import Connection
from sqlglot import exp

from ot_core.engines import Backend, register
from ot_core.errors import TRANSIENT_HINTS, SourceUnavailable, TerminalError
from ot_core.pipeline.source_contract import SourceColumn
from ot_core.quality.checksum import ChecksumDialect
from ot_core.secrets import redact

READER_ENV = "OT_SOURCE_READER"


class SourceReadError(TerminalError):
    """The fast reader failed for a reason retrying cannot fix (bad SQL, wrong type)."""


def reader_name() -> str:
    """'connectorx' when it is installed and not overridden, else 'pymysql'."""
    wanted = os.environ.get(READER_ENV, "").strip().lower()
    if wanted == "pymysql":
        return "pymysql"
    if importlib.util.find_spec("connectorx") is None:
        return "pymysql"
    return "connectorx"


class MySQLChecksum(ChecksumDialect):
    text_type = "CHAR"
    int_type = "SIGNED"

    def concat(self, parts: Sequence[str]) -> str:
        return "CONCAT(" + ", ".join(parts) + ")"

    def hash28(self, text: str) -> str:
        return f"CAST(CONV(SUBSTRING(MD5({text}), 1, 7), 16, 10) AS UNSIGNED)"

    def intdiv(self, a: str, b: str) -> str:
        return f"(({a}) DIV {b})"


@register
class MySQLBackend(Backend):
    name = "mysql"
    checksum_class = MySQLChecksum
    roles = frozenset({"source"})
    has_schemas = False
    clock_sql = "SELECT UNIX_TIMESTAMP()"

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

    def engine_kwargs(self) -> dict:
        return {"pool_pre_ping": True, "pool_recycle": 3600}

    def stream_query(
        self, conn: Connection, sql: str, params: dict[str, Any], chunk_rows: int
    ) -> Iterator[pd.DataFrame]:
        if reader_name() == "connectorx":
            yield from _keyset_pages(conn, sql, params, chunk_rows)
        else:
            yield from super().stream_query(conn, sql, params, chunk_rows)


def _cx_url(conn: Connection) -> str:
    url = conn.engine.url.set(drivername="mysql", query={})
    return url.render_as_string(hide_password=False)


def _int_literal(value: Any) -> exp.Expression:
    # connectorx takes no bound parameters. The only values ever inlined are integers: the
    # window bounds the extract step computed and the ORDER BY values of the last row read
    # (epoch seconds and BIGINT keys of the contract). int() refuses anything else.
    return exp.Literal.number(int(value))


def _page_plan(sql: str, params: dict[str, Any],
               dialect: sa.engine.Dialect) -> tuple[exp.Select, list[str]]:
    """The statement with its bounds inlined, and the ORDER BY column names (keyset)."""
    binds = [sa.bindparam(k, int(v), type_=sa.BigInteger) for k, v in params.items()]
    literal = sa.text(sql).bindparams(*binds).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True})
    tree = sqlglot.parse_one(str(literal), read="mysql")
    if not isinstance(tree, exp.Select):
        raise ValueError("the fast reader reads SELECT statements only")
    order = tree.args.get("order")
    if order is None:
        raise ValueError("keyset pages need an ORDER BY")
    names = []
    for o in order.expressions:
        if o.args.get("desc") or not isinstance(o.this, exp.Column):
            raise ValueError("keyset pages need ascending plain-column ORDER BY")
        names.append(o.this.name)
    return tree, names


def _after(names: list[str], last: list[int]) -> exp.Expression:
    """(a, b, c) > (va, vb, vc), spelled out so the index range is used."""
    cond: exp.Condition | None = None
    for i in range(len(names) - 1, -1, -1):
        col = exp.column(names[i], quoted=True)
        term: exp.Condition = exp.GT(this=col, expression=_int_literal(last[i]))
        if cond is not None:
            eq = exp.EQ(this=exp.column(names[i], quoted=True), expression=_int_literal(last[i]))
            term = exp.or_(term, exp.and_(eq, cond))
        cond = term
    assert cond is not None
    return exp.paren(cond)


def _keyset_pages(conn: Connection, sql: str, params: dict[str, Any],
                  chunk_rows: int) -> Iterator[pd.DataFrame]:
    import connectorx as cx

    tree, names = _page_plan(sql, params, conn.dialect)
    url = _cx_url(conn)
    last: list[int] | None = None
    while True:
        page = tree.copy()
        if last is not None:
            page = page.where(_after(names, last), copy=False)
        page = page.limit(int(chunk_rows), copy=False)
        text = page.sql(dialect="mysql")
        try:
            frame = cx.read_sql(url, text, return_type="pandas")
        except Exception as e:  # noqa: BLE001 - connectorx raises plain RuntimeErrors
            password = conn.engine.url.password
            message = str(e).replace(str(password), "***") if password else str(e)
            message = redact(message).splitlines()[0] if message else type(e).__name__
            if any(h in message.lower() for h in TRANSIENT_HINTS):
                raise SourceUnavailable(f"reading the source failed: {message}") from None
            raise SourceReadError(f"reading the source failed: {message}") from None
        if len(frame) == 0:
            return
        yield frame
        if len(frame) < chunk_rows:
            return
        tail = frame.iloc[-1]
        last = [int(tail[n]) for n in names]


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


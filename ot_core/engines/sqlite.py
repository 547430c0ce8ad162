"""SQLite: the embedded source. No schemas; the catalog is sqlite_master / PRAGMA."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.engines.base import Backend, driver
from ot_core.engines.strategies import ChecksumDialect, SourceColumn, hash28_text


class SQLiteChecksum(ChecksumDialect):
    text_type = "TEXT"
    int_type = "INTEGER"
    hashes_in_python = True
    scope_ref_prefix = "+"

    def prepare(self, conn: Connection) -> None:
        raw = driver(conn)
        raw.create_function("ot_hash28", 1, hash28_text, deterministic=True)

    def hash28(self, text: str) -> str:
        return f"ot_hash28({text})"


class SQLiteBackend(Backend):
    name = "sqlite"
    checksum_class = SQLiteChecksum
    roles = frozenset({"source"})
    has_schemas = False
    embedded_file = True
    clock_sql = "SELECT CAST(strftime('%s', 'now') AS INTEGER)"

    def serial_key_type(self) -> sa.types.TypeEngine:
        return sa.Integer()  # only INTEGER PRIMARY KEY is assigned automatically

    def list_tables(self, conn: Connection, schema: str | None, prefix: str = "") -> list[str]:
        rows = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def source_columns(self, conn: Connection, table: str) -> list[SourceColumn]:
        rows = conn.execute(sa.text("SELECT name, type, \"notnull\" FROM pragma_table_info(:t)"),
                            {"t": table})
        return [_sqlite_column(r[0], r[1] or "", bool(r[2])) for r in rows]

    def list_columns(self, conn: Connection, schema: str | None, table: str) -> list[str]:
        rows = conn.execute(sa.text("SELECT name FROM pragma_table_info(:t)"), {"t": table})
        return [r[0] for r in rows]

    def prepare_bulk_write(self, conn: Connection) -> None:
        # Secondary indexes (order_id, add_time) are updated in random order: a large page
        # cache keeps them in memory instead of re-reading pages for every insert.
        conn.exec_driver_sql("PRAGMA cache_size = -524288")  # KiB: 512 MiB
        conn.exec_driver_sql("PRAGMA temp_store = MEMORY")

    def connectorx_url(self, url: sa.engine.URL) -> str | None:
        path = url.database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return "sqlite://" + quote(os.path.abspath(path))


_DECLARED = re.compile(r"^\s*([A-Za-z ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")
_INT_BITS = {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 24, "INT": 32, "INTEGER": 32,
             "BIGINT": 64}
_STRINGS = ("VARCHAR", "CHAR", "CHARACTER", "NVARCHAR", "NCHAR", "TEXT", "CLOB",
            "VARYING CHARACTER", "CHARACTER VARYING")


def _sqlite_column(name: str, declared: str, notnull: bool) -> SourceColumn:
    """SQLite keeps the declared type as text: read it the way the contract spells types."""
    m = _DECLARED.match(declared)
    base = (m.group(1) if m else declared).strip().upper()
    a = int(m.group(2)) if m and m.group(2) else None
    b = int(m.group(3)) if m and m.group(3) else None
    common: dict[str, Any] = dict(name=name, declared=declared or "(no type)",
                                  nullable=not notnull)
    if base in _INT_BITS:
        return SourceColumn(kind="integer", bits=_INT_BITS[base], **common)
    if base in ("DECIMAL", "NUMERIC"):
        return SourceColumn(kind="decimal", precision=a, scale=b if b is not None else 0, **common)
    if base in _STRINGS:
        return SourceColumn(kind="string", length=a if base not in ("TEXT", "CLOB") else None,
                            **common)
    if base in ("REAL", "FLOAT", "DOUBLE", "DOUBLE PRECISION"):
        return SourceColumn(kind="float", **common)
    return SourceColumn(kind="other", **common)


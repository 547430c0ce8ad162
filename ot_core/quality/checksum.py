"""Row checksums computed inside each database, identical for identical data on every engine.

A comparison must not ship tables over the network, so each side reduces a key segment to
``COUNT(*)`` and ``SUM(h(row))`` where ``h`` is the first 28 bits of the MD5 of a canonical
text of the row. The canonical text is the same on every engine because types are
normalised before hashing:

* integers (and epoch seconds) as decimal text of a BIGINT;
* decimals as the scaled integer (``12.34`` with scale 2 → ``1234``), so a float-backed
  SQLite column and an exact DECIMAL give the same text;
* strings escaped so the field separator cannot be confused: ``~`` → ``~~`` and ``|`` →
  ``~p``; fields joined with ``|``;
* NULL as ``~N`` (an escaped string never starts with ``~N``, so NULL ≠ the text ``~N``).

What differs per engine (MD5 → integer, concatenation, integer division, casts) is a small
entry in the registry below, keyed by the backend's name like ``ot_core.engines``. SQLite
has no MD5: the entry registers a deterministic function on the connection before use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.contract import Column, TableContract

if TYPE_CHECKING:
    from ot_core.engines import Backend

SEPARATOR = "|"
ESCAPE = "~"
NULL_MARK = "~N"
HASH_BITS = 28


class ChecksumDialect:
    """The ANSI/PostgreSQL spelling; an engine's subclass overrides what it spells differently."""

    text_type: ClassVar[str] = "VARCHAR"
    int_type: ClassVar[str] = "BIGINT"
    # the engine hashes through a Python function, row by row (compare reads it as Arrow
    # and hashes in DuckDB instead: ``arrow_segments.py``)
    hashes_in_python: ClassVar[bool] = False
    # written before the scope's column references, so the planner reads key ranges by the
    # primary key rather than the scope column's index ('+' on SQLite)
    scope_ref_prefix: ClassVar[str] = ""

    def __init__(self, backend: Backend):
        self.backend = backend

    def prepare(self, conn: Connection) -> None:
        """Make the hash function available on ``conn`` (only SQLite needs it)."""

    def as_text(self, expr: str) -> str:
        return f"CAST({expr} AS {self.text_type})"

    def as_int(self, expr: str) -> str:
        return f"CAST({expr} AS {self.int_type})"

    def concat(self, parts: Sequence[str]) -> str:
        return "(" + " || ".join(parts) + ")"

    def hash28(self, text: str) -> str:
        return f"CAST(('x' || '0' || SUBSTR(MD5({text}), 1, 7))::bit(32) AS INTEGER)"

    def intdiv(self, a: str, b: str) -> str:
        return f"(({a}) / {b})"

    # -- shared --------------------------------------------------------------------------
    def field(self, column: Column, ref: str) -> str:
        """The canonical text of one column, NULL included."""
        typ = column.type
        if isinstance(typ, sa.Integer):
            value = self.as_text(self.as_int(ref))
        elif isinstance(typ, sa.Numeric):
            scale = typ.scale or 0
            value = self.as_text(self.as_int(f"ROUND({ref} * {10 ** scale})"))
        else:
            value = (f"REPLACE(REPLACE({self.as_text(ref)}, '{ESCAPE}', '{ESCAPE}{ESCAPE}'), "
                     f"'{SEPARATOR}', '{ESCAPE}p')")
        return f"COALESCE({value}, '{NULL_MARK}')"

    def row_text(self, columns: Sequence[Column], alias: str = "t") -> str:
        parts: list[str] = []
        for i, c in enumerate(columns):
            if i:
                parts.append(f"'{SEPARATOR}'")
            parts.append(self.field(c, f"{alias}.{self.backend.quote(c.name)}"))
        return self.concat(parts)

    def row_hash(self, columns: Sequence[Column], alias: str = "t") -> str:
        return self.hash28(self.row_text(columns, alias))




def hash28_text(text: str | None) -> int | None:
    """The first 28 bits of the MD5 of ``text``: what every engine's spelling computes."""
    if text is None:
        return None
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:7], 16)


def checksum_dialect(backend: Backend) -> ChecksumDialect:
    """The checksum spelling of ``backend``'s engine."""
    return backend.checksum_class(backend)


# -- the reference encoding, in Python (what every engine must reproduce) ---------------------
def field_text(column: Column, value: Any) -> str:
    if value is None:
        return NULL_MARK
    typ = column.type
    if isinstance(typ, sa.Integer):
        return str(int(value))
    if isinstance(typ, sa.Numeric):
        from decimal import ROUND_HALF_UP, Decimal

        scaled = (Decimal(str(value)) * (10 ** (typ.scale or 0))).quantize(
            Decimal(1), rounding=ROUND_HALF_UP)
        return str(int(scaled))
    s = str(value)
    return s.replace(ESCAPE, ESCAPE * 2).replace(SEPARATOR, f"{ESCAPE}p")


def row_text(contract: TableContract, row: dict[str, Any]) -> str:
    return SEPARATOR.join(field_text(c, row.get(c.name)) for c in contract.columns)


def row_hash(contract: TableContract, row: dict[str, Any]) -> int:
    h = hash28_text(row_text(contract, row))
    assert h is not None
    return h

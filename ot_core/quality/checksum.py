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

What differs per engine (MD5 → integer, concatenation, integer division, casts) is the
engine's ``ChecksumDialect`` (``ot_core/engines``; ``backend.checksum()``). SQLite has no
MD5: its spelling registers a deterministic function on the connection before use.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ot_core.contract import Column, TableContract
from ot_core.engines.strategies import (
    ESCAPE,
    HASH_BITS,
    NULL_MARK,
    SEPARATOR,
    ChecksumDialect,
    hash28_text,
)

__all__ = ["ESCAPE", "HASH_BITS", "NULL_MARK", "SEPARATOR", "ChecksumDialect", "field_text",
           "hash28_text", "row_hash", "row_text"]


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

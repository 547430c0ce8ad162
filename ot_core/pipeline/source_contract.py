"""The source contract checked before any table is written: names, types, lengths, nulls.

Each engine reads its catalog into :class:`SourceColumn` rows (``source_columns``); this
module judges them against the contract (docs/contracts.md#source-contract). A drift the
landing can hold — a column added, a wider VARCHAR, a nullable column the contract says is
NOT NULL, a wider integer — is logged and the cycle carries on (the values themselves are
still checked as they are read, see ``pipeline/frames.py``). One it cannot hold — a
missing column, a name in another case, a different kind of type, a DECIMAL whose scale
differs (values would be rounded) or whose precision is wider — stops the cycle with one
line naming the table, the column, what was found and what the contract expects.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from ot_core.contract import Column, TableContract
from ot_core.engines.strategies import SourceColumn
from ot_core.errors import ContractError

log = logging.getLogger("ot.contract")

NOTHING_WRITTEN = "nothing was extracted, no table was written and no watermark moved"


_INT_NAMES: dict[type[Any], str] = {sa.SmallInteger: "SMALLINT", sa.BigInteger: "BIGINT"}
_INT_BITS: dict[type[Any], int] = {sa.SmallInteger: 16, sa.BigInteger: 64}


def expected(column: Column) -> str:
    """How the contract spells a column's type, for messages."""
    typ = column.type
    if column.epoch:
        return "INT UNSIGNED (epoch seconds)"
    if isinstance(typ, sa.Numeric) and not isinstance(typ, sa.Integer):
        return f"DECIMAL({typ.precision},{typ.scale})"
    if isinstance(typ, sa.String):
        return f"{'CHAR' if isinstance(typ, sa.CHAR) else 'VARCHAR'}({typ.length})"
    return _INT_NAMES.get(type(typ), "INT")


def integer_bits(column: Column) -> int:
    """What the warehouse column holds (epoch seconds land as BIGINT)."""
    if column.epoch:
        return 64
    return _INT_BITS.get(type(column.type), 32)


def check_table(contract: TableContract, found: list[SourceColumn]) -> list[str]:
    """Raise ContractError for a drift the landing cannot hold; return the drifts logged."""
    table = contract.name
    if not found:
        raise ContractError(
            f"source table {table!r} does not exist; expected columns: "
            f"{', '.join(contract.column_names)}. Create it (or a view of that name) in the "
            f"source database, then rerun: {NOTHING_WRITTEN}.")
    by_name = {c.name: c for c in found}
    by_lower = {c.name.lower(): c for c in found}
    notes: list[str] = []
    for col in contract.columns:
        have = by_name.get(col.name)
        if have is None:
            other = by_lower.get(col.name.lower())
            if other is not None:
                raise ContractError(
                    f"source table {table!r}: column {col.name!r} is spelled {other.name!r}; "
                    f"the pipeline reads {col.name!r} exactly. Rename it back (or alias it in "
                    f"a view), then rerun: {NOTHING_WRITTEN}.")
            raise ContractError(
                f"source table {table!r} has no column {col.name!r}, which the pipeline "
                "reads. Add the column to the table (or to the view the source exposes), then "
                f"rerun: {NOTHING_WRITTEN}.")
        problem = _judge(col, have)
        where = f"source table {table!r}, column {col.name!r}: found {have.declared}, " \
                f"expected {expected(col)}"
        if problem is not None:
            raise ContractError(f"{where}: {problem}. Restore the column's type, then rerun: "
                                f"{NOTHING_WRITTEN}.")
        note = _drift(col, have)
        if note:
            notes.append(f"{where}: {note}")
    for extra in sorted(set(by_name) - set(contract.column_names)):
        notes.append(f"source table {table!r} has a column {extra!r} the contract does not "
                     "name; it is not read")
    for n in notes:
        log.warning("%s", n)
    return notes


def _judge(col: Column, have: SourceColumn) -> str | None:
    """Why the landing cannot hold this column as it is declared now (None: it can)."""
    typ = col.type
    if isinstance(typ, sa.Integer):
        if have.kind != "integer":
            return "a different kind of type; values would not land as integers"
        return None
    if isinstance(typ, sa.Numeric):
        if have.kind != "decimal":
            return "a different kind of type; DECIMAL values would lose exactness"
        if have.scale is not None and have.scale != typ.scale:
            return (f"its scale {have.scale} differs from {typ.scale}: values would be rounded "
                    "on the way")
        if have.precision is not None and typ.precision is not None \
                and have.precision - (have.scale or 0) > typ.precision - (typ.scale or 0):
            return "wider than the warehouse column: large values would not fit"
        return None
    if isinstance(typ, sa.String) and have.kind != "string":
        return "a different kind of type; the warehouse column holds text"
    return None


def _drift(col: Column, have: SourceColumn) -> str | None:
    """A difference the landing can hold, worth a log line (None: none)."""
    typ = col.type
    parts = []
    if isinstance(typ, sa.Integer) and have.bits is not None and have.bits > integer_bits(col):
        parts.append("a wider integer: each value is checked as it is read")
    if isinstance(typ, sa.String) and (have.length is None or
                                       (typ.length is not None and have.length > typ.length)):
        parts.append("a wider text column: each value is checked as it is read")
    if not col.nullable and have.nullable:
        parts.append("nullable where the contract says NOT NULL: a NULL stops the cycle")
    return "; ".join(parts) or None

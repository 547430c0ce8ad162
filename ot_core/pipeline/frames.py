"""Typed DataFrames for the contract's columns, whatever driver produced the rows.

Drivers disagree (SQLite gives floats for DECIMAL, pymysql gives Decimal, NULL integers
would turn a column into floats); the warehouse must see one typing: nullable Int64 for
integers, Decimal for DECIMAL, strings as strings.

Values are never changed on the way: a value the warehouse column cannot hold exactly (text
in an integer column, a DECIMAL with more decimals than the contract's scale, an integer
out of the column's range, a string longer than its VARCHAR, a NULL in a NOT NULL column)
stops the cycle with one line naming the table, the column and the value
(``ValueOutOfContract``); the cycle lands every table in one transaction, so nothing is
written (docs/contracts.md#checked-before-every-cycle).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ot_core.contract import Column, TableContract
from ot_core.errors import ValueOutOfContract


class _Bad(ValueError):
    def __init__(self, value: Any, why: str):
        super().__init__(why)
        self.value, self.why = value, why


def _refuse(contract: TableContract, col: Column, value: Any, why: str) -> ValueOutOfContract:
    from ot_core.pipeline.source_contract import NOTHING_WRITTEN, expected

    return ValueOutOfContract(
        f"source table {contract.name!r}, column {col.name!r}: value {value!r} {why} "
        f"(expected {expected(col)}). Fix the row at the source, then rerun: {NOTHING_WRITTEN}.")


def _decimal(scale: int, precision: int | None):
    quantum = Decimal(1).scaleb(-scale)
    integer_digits = None if precision is None else precision - scale

    def conv(v: Any) -> Decimal | None:
        if v is None:
            return None
        raw = v
        if isinstance(v, float):
            if v != v:  # NaN
                return None
            v = repr(v)
        try:
            exact = Decimal(v)
        except (InvalidOperation, TypeError, ValueError):
            raise _Bad(raw, "is not a number") from None
        if not exact.is_finite():
            raise _Bad(raw, "is not a finite number")
        q = exact.quantize(quantum)
        if q != exact:
            raise _Bad(raw, f"has more than {scale} decimals: it would be rounded")
        if integer_digits is not None and q.adjusted() >= integer_digits:
            raise _Bad(raw, "is too large for the column")
        return q

    return conv


def _decimals(values: pd.Series, scale: int, precision: int | None) -> np.ndarray:
    """``_decimal`` over a column: each distinct value is converted once.

    Float columns (SQLite, connectorx): prices repeat, so each distinct float is converted
    once (``pd.factorize``) and indexed back, through its shortest repr as ``conv`` does.
    Object columns (pymysql): a Decimal already at the column's scale and precision is kept
    as is.
    """
    conv = _decimal(scale, precision)
    if values.dtype.kind == "f" and not (np.signbit(values.to_numpy()) & (values == 0)).any():
        # (-0.0 equals 0.0 for factorize but quantizes to Decimal('-0.00'): loop for those)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        table = np.empty(len(uniques) + 1, dtype=object)  # the last slot (code -1) is NULL
        table[:-1] = [conv(v) for v in uniques.tolist()]
        return table[codes]
    exponent = -scale
    limit = None if precision is None else precision - scale
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        if (type(v) is Decimal and v.is_finite() and v.as_tuple().exponent == exponent
                and (limit is None or v.adjusted() < limit)):
            out[i] = v
        elif v is None or _isna(v):
            out[i] = None
        else:
            out[i] = conv(v)
    return out


_INT_BITS: dict[type[Any], int] = {sa.SmallInteger: 16, sa.BigInteger: 64}


def _integers(values: pd.Series, col: Column) -> pd.arrays.IntegerArray:
    if values.dtype.kind in "iu":
        arr = pd.array(values.to_numpy(), dtype="Int64")
    elif str(values.dtype) in _NULLABLE_INTS:
        arr = cast(pd.arrays.IntegerArray, values.astype("Int64").array)
    else:
        objs = values.astype("object").where(values.notna(), None)
        try:
            arr = pd.array(objs.to_numpy(), dtype="Int64")
        except (TypeError, ValueError, OverflowError):
            for v in objs.tolist():
                try:
                    pd.array([v], dtype="Int64")
                except (TypeError, ValueError, OverflowError):
                    raise _Bad(v, "is not an integer that fits BIGINT") from None
            raise
    if col.epoch:
        lo, hi = 0, 2**63 - 1
    else:
        bits = _INT_BITS.get(type(col.type), 32)
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    present = pd.Series(arr).dropna()
    if len(present) and (present.min() < lo or present.max() > hi):
        bad = next(int(v) for v in present if v < lo or v > hi)
        raise _Bad(bad, "does not fit the column")
    return arr


def _strings(values: pd.Series, col: Column) -> pd.Series:
    out = values.astype("object").where(values.notna(), None)
    limit = getattr(col.type, "length", None)
    if limit is not None and len(out):
        lengths = out.map(lambda v: len(v) if isinstance(v, str) else 0)
        if int(lengths.max()) > limit:
            raise _Bad(out[lengths > limit].iloc[0], f"is longer than {limit} characters")
    return out


def typed_frame(frame: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    """Cast a chunk read from any source to the contract's column types, exactly, or raise
    ``ValueOutOfContract`` naming the first value that does not fit."""
    out: dict[str, pd.api.extensions.ExtensionArray | pd.Series] = {}
    for col in contract.columns:
        values = frame[col.name]
        try:
            if not col.nullable and values.isna().any():
                raise _Bad(None, "is NULL in a NOT NULL column")
            if isinstance(col.type, sa.Integer):
                out[col.name] = _integers(values, col)
            elif isinstance(col.type, sa.Numeric):
                out[col.name] = pd.Series(
                    _decimals(values, col.type.scale or 0, col.type.precision),
                    dtype="object", index=frame.index)
            else:
                out[col.name] = _strings(values, col)
        except _Bad as bad:
            raise _refuse(contract, col, bad.value, bad.why) from None
    return pd.DataFrame(out, index=frame.index)


_NULLABLE_INTS = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False

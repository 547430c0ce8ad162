"""Typed DataFrames for the contract's columns, whatever driver produced the rows.

Drivers disagree (SQLite gives floats for DECIMAL, pymysql gives Decimal, NULL integers
would turn a column into floats); the warehouse must see one typing: nullable Int64 for
integers, Decimal for DECIMAL, strings as strings.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ot_core.contract import TableContract


def _decimal(scale: int):
    quantum = Decimal(1).scaleb(-scale)

    def conv(v: Any) -> Decimal | None:
        if v is None:
            return None
        if isinstance(v, float):
            if v != v:  # NaN
                return None
            v = repr(v)
        return Decimal(v).quantize(quantum, rounding=ROUND_HALF_EVEN)

    return conv


def _decimals(values: pd.Series, scale: int) -> np.ndarray:
    """``_decimal(scale)`` over a column: each distinct value is converted once.

    Float columns (SQLite, connectorx): prices repeat, so each distinct float is converted
    once (``pd.factorize``) and indexed back, through its shortest repr as ``conv`` does.
    Object columns (pymysql): a Decimal already at the column's scale is kept as is, since
    quantizing it would return an equal Decimal with the same exponent.
    """
    conv = _decimal(scale)
    if values.dtype.kind == "f" and not (np.signbit(values.to_numpy()) & (values == 0)).any():
        # (-0.0 equals 0.0 for factorize but quantizes to Decimal('-0.00'): loop for those)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        table = np.empty(len(uniques) + 1, dtype=object)  # the last slot (code -1) is NULL
        table[:-1] = [conv(v) for v in uniques.tolist()]
        return table[codes]
    exponent = -scale
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        if type(v) is Decimal and v.is_finite() and v.as_tuple().exponent == exponent:
            out[i] = v
        elif v is None or _isna(v):
            out[i] = None
        else:
            out[i] = conv(v)
    return out


def typed_frame(frame: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    """Cast a chunk read from any source to the contract's column types."""
    out = {}
    for col in contract.columns:
        values = frame[col.name]
        if isinstance(col.type, sa.Integer):
            if values.dtype.kind in "iu" or str(values.dtype) in _NULLABLE_INTS:
                out[col.name] = pd.array(values.to_numpy(), dtype="Int64") \
                    if values.dtype.kind in "iu" else values.astype("Int64").array
            else:
                out[col.name] = pd.array(values.astype("object").where(values.notna(), None),
                                         dtype="Int64")
        elif isinstance(col.type, sa.Numeric):
            out[col.name] = pd.Series(_decimals(values, col.type.scale or 0),
                                      dtype="object", index=frame.index)
        else:
            out[col.name] = values.astype("object").where(values.notna(), None)
    return pd.DataFrame(out, index=frame.index)


_NULLABLE_INTS = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False

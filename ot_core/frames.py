"""Typed DataFrames for the contract's columns, whatever driver produced the rows.

Drivers disagree (SQLite gives floats for DECIMAL, pymysql gives Decimal, NULL integers
would turn a column into floats); the warehouse must see one typing: nullable Int64 for
integers, Decimal for DECIMAL, strings as strings.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from .contract import TableContract


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


def typed_frame(frame: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    """Cast a chunk read from any source to the contract's column types."""
    out = {}
    for col in contract.columns:
        values = frame[col.name]
        if isinstance(col.type, sa.Integer):
            out[col.name] = pd.array(values.astype("object").where(values.notna(), None), dtype="Int64")
        elif isinstance(col.type, sa.Numeric):
            conv = _decimal(col.type.scale or 0)
            out[col.name] = pd.Series([conv(v) if not _isna(v) else None for v in values],
                                      dtype="object", index=frame.index)
        else:
            out[col.name] = values.astype("object").where(values.notna(), None)
    return pd.DataFrame(out, index=frame.index)


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False

"""Typed Arrow tables for the contract's columns: the cycle's data path.

Every reader (connectorx, a DB-API cursor) hands its rows over as Arrow; this module casts
them to the contract's exact warehouse types (BIGINT → int64, INT → int32, SMALLINT → int16,
DECIMAL(p, s) → decimal128(p, s), CHAR/VARCHAR → string) with vectorized checks, so no
value is changed on the way. Anything the vectorized checks do not accept outright (a NULL
in a NOT NULL column, text in an integer column, a DECIMAL with more decimals than the
scale, a string over its length) goes through ``frames.typed_frame``, value by value: it
either accepts the column (a driver's odd but exact typing) or raises the one-line
``ValueOutOfContract`` naming the table, the column and the value. One rule set, two speeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from ot_core.contract import Column, TableContract

_INT_TYPES: dict[type[Any], pa.DataType] = {sa.SmallInteger: pa.int16(), sa.BigInteger: pa.int64()}


def arrow_type(col: Column) -> pa.DataType:
    """The Arrow type that holds the column's warehouse type exactly."""
    if isinstance(col.type, sa.Integer):
        return pa.int64() if col.epoch else _INT_TYPES.get(type(col.type), pa.int32())
    if isinstance(col.type, sa.Numeric):
        return pa.decimal128(col.type.precision or 38, col.type.scale or 0)
    return pa.string()


def contract_schema(contract: TableContract) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c), nullable=c.nullable)
                      for c in contract.columns])


class _Slow(Exception):
    """This column needs the value-by-value path (to accept it exactly, or to name the
    value that does not fit)."""


def _integers(arr: pa.Array, col: Column, target: pa.DataType) -> pa.Array:
    """Range-checked with numpy on the buffers: Arrow's own cast would import
    pyarrow.compute, a noticeable share of a short cycle process's start."""
    if not pa.types.is_integer(arr.type):
        raise _Slow
    values, valid, present = _int_values(arr)
    bounds = np.iinfo(_numpy_int(target))
    low = 0 if col.epoch else bounds.min  # an epoch is never negative
    if present.size and (present.min() < low or present.max() > bounds.max):
        raise _Slow
    if arr.type == target:
        return arr
    out = values.astype(_numpy_int(target))
    out[~valid] = 0
    return from_numpy(out, target, valid)


def _numpy_int(t: pa.DataType) -> np.dtype:
    return np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")


def _int_values(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An integer array's values (NULL slots included), its validity, its non-NULL values."""
    values = _buffer_values(arr, _numpy_int(arr.type))
    valid = _valid(arr)
    return values, valid, values[valid]


def _decimals(arr: pa.Array, target: pa.Decimal128Type) -> pa.Array:
    if arr.type == target:
        return arr
    if pa.types.is_integer(arr.type) and target.precision <= 18:
        return _integers_as_decimals(arr, target)
    if pa.types.is_decimal(arr.type) or pa.types.is_integer(arr.type):
        try:
            return arr.cast(target, safe=True)  # refuses rounding and overflow
        except (pa.ArrowInvalid, OverflowError):
            raise _Slow from None
    if pa.types.is_floating(arr.type):
        return _floats_as_decimals(arr, target)
    if pa.types.is_null(arr.type) or (pa.types.is_string(arr.type) and arr.null_count == len(arr)):
        return pa.nulls(len(arr), target)
    raise _Slow


def _integers_as_decimals(arr: pa.Array, target: pa.Decimal128Type) -> pa.Array:
    """Whole numbers that fit the precision, scaled exactly in int64 (precision <= 18)."""
    values, valid, present = _int_values(arr)
    whole = 10 ** (target.precision - target.scale)
    if present.size and (present.min() <= -whole or present.max() >= whole):
        raise _Slow
    unscaled = np.zeros(len(values), dtype=np.int64)
    unscaled[valid] = present.astype(np.int64) * (10 ** target.scale)
    return _decimal128(unscaled, target, valid)


def _decimal128(unscaled: np.ndarray, target: pa.Decimal128Type, valid: np.ndarray) -> pa.Array:
    words = np.empty((len(unscaled), 2), dtype=np.int64)  # little-endian 128-bit integers
    words[:, 0] = unscaled
    words[:, 1] = unscaled >> 63
    return from_numpy(words, target, valid)


def _floats_as_decimals(arr: pa.Array, target: pa.Decimal128Type) -> pa.Array:
    """A double is accepted when its shortest repr has at most ``scale`` decimals (what
    ``frames`` checks value by value): then it is the double nearest to k / 10**scale, and
    k / 10**scale computed in doubles gives it back. The decimal is built from k exactly."""
    valid = _valid(arr)
    values = _buffer_values(arr if arr.type == pa.float64() else arr.cast(pa.float64()),
                            np.float64)
    valid &= ~np.isnan(values)  # NaN is read as NULL, as ``frames`` does
    present = values[valid]
    if not np.isfinite(present).all():
        raise _Slow
    factor = 10.0 ** target.scale
    k = np.rint(present * factor)
    limit = 10.0 ** target.precision
    if (np.abs(k) >= limit).any() or not np.array_equal(k / factor, present):
        raise _Slow
    unscaled = np.zeros(len(values), dtype=np.int64)
    unscaled[valid] = k.astype(np.int64)
    return _decimal128(unscaled, target, valid)


def _valid(arr: pa.Array) -> np.ndarray:
    n, offset = len(arr), arr.offset
    bitmap = arr.buffers()[0]
    if arr.null_count == 0 or bitmap is None:
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[offset:offset + n].astype(bool)


def _buffer_values(arr: pa.Array, dtype: np.dtype | type) -> np.ndarray:
    """A fixed-width array's values as numpy, NULL slots included (whatever they hold).
    Read from the buffer: ``to_numpy`` and ``pa.scalar`` import pandas."""
    data = arr.buffers()[1]
    values: np.ndarray = (np.frombuffer(data, dtype=dtype) if data is not None
                          else np.zeros(0, dtype))
    return values[arr.offset:arr.offset + len(arr)].copy()


def from_numpy(values: np.ndarray, target: pa.DataType,
               valid: np.ndarray | None = None) -> pa.Array:
    """A fixed-width Arrow array over a numpy buffer (``pa.array`` would import pandas to
    look for pandas input, a second of a steady-state cycle's start-up)."""
    n = len(values)
    values = np.ascontiguousarray(values)
    if valid is None or valid.all():
        return pa.Array.from_buffers(target, n, [None, pa.py_buffer(values)])
    bits = np.packbits(valid, bitorder="little")
    return pa.Array.from_buffers(target, n, [pa.py_buffer(bits), pa.py_buffer(values)],
                                 null_count=int(n - valid.sum()))


def _strings(arr: pa.Array, col: Column) -> pa.Array:
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise _Slow
    limit = getattr(col.type, "length", None)
    if limit is not None and len(arr) and arr.null_count < len(arr) \
            and _longest_bytes(arr) > limit:
        # over the limit in bytes: count characters (pyarrow.compute, imported only here:
        # slow to import for a steady cycle's short process)
        import pyarrow.compute as pc

        longest = pc.max(pc.utf8_length(arr)).as_py()
        if longest is not None and longest > limit:
            raise _Slow
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _longest_bytes(arr: pa.Array) -> int:
    """The longest value's length in UTF-8 bytes (NULL slots included), from the offsets
    buffer: a string of at most ``limit`` bytes has at most ``limit`` characters."""
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset:arr.offset + len(arr) + 1]
    return int(np.diff(offsets).max())


def _fast(arr: pa.Array, col: Column, target: pa.DataType) -> pa.Array:
    if not col.nullable and arr.null_count:
        raise _Slow
    if isinstance(col.type, sa.Integer):
        return _integers(arr, col, target)
    if isinstance(col.type, sa.Numeric):
        return _decimals(arr, target)
    return _strings(arr, col)


def typed_table(table: pa.Table | pa.RecordBatch, contract: TableContract) -> pa.Table:
    """Cast a chunk read from any source to the contract's Arrow schema, exactly, or raise
    ``ValueOutOfContract`` naming the first value that does not fit."""
    schema = contract_schema(contract)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    arrays = []
    for col, field in zip(contract.columns, schema, strict=True):
        arr = (table.column(col.name).combine_chunks() if table.num_rows
               else pa.nulls(0, field.type))
        try:
            arrays.append(_fast(arr, col, field.type))
        except _Slow:
            arrays.append(_exact(arr.to_pylist(), contract, col, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def typed_rows(rows: Sequence[Sequence[Any]], columns: Sequence[str],
               contract: TableContract) -> pa.Table:
    """A DB-API fetch (a list of tuples) as a typed table: columns are built by Arrow's
    type inference, then checked as every other reader's are."""
    index = {name: i for i, name in enumerate(columns)}
    arrays: dict[str, pa.Array] = {}
    pending: dict[str, list[Any]] = {}
    by_column = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    for col in contract.columns:
        values = list(by_column[index[col.name]])
        try:
            arrays[col.name] = pa.array(values, from_pandas=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            pending[col.name] = values
    if not pending:
        return typed_table(pa.table(arrays), contract)
    schema = contract_schema(contract)
    out = []
    for col, field in zip(contract.columns, schema, strict=True):
        if col.name in pending:
            out.append(_exact(pending[col.name], contract, col, field.type))
        else:
            try:
                out.append(_fast(arrays[col.name], col, field.type))
            except _Slow:
                out.append(_exact(arrays[col.name].to_pylist(), contract, col, field.type))
    return pa.Table.from_arrays(out, schema=schema)


def _exact(values: list[Any], contract: TableContract, col: Column,
           target: pa.DataType) -> pa.Array:
    """The value-by-value rules of ``frames`` for one column (raises on a bad value)."""
    import pandas as pd

    from ot_core.pipeline.frames import typed_frame

    one = replace(contract, columns=(col,))
    typed = typed_frame(pd.DataFrame({col.name: pd.Series(values, dtype=object)}), one)
    series = typed[col.name]
    if isinstance(col.type, sa.Integer):
        # nullable Int64: NA → None, values as Python ints
        return pa.array([None if pd.isna(v) else int(v) for v in series.tolist()], type=target)
    return pa.array(series.tolist(), type=target)

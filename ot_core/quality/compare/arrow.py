"""Segment checksums for a side whose database can only hash row by row in Python (SQLite:
no MD5, so ``ot_hash28`` is a Python function called once per row).

Why: on an 8.8M-row SQLite table that function call is nearly all of a comparison's time.
Here the side's rows are read once per requested key range, in native code, as Arrow
(connectorx, the next range read while this one is hashed), and DuckDB computes the very
same checksum expressions over them in place: the canonical text of ``checksum.py`` in
DuckDB's spelling, the same 28-bit MD5 prefix. The buckets, counts and sums are identical
to what the side's own SQL returns (``tests/test_compare.py`` checks it), so bisection and
the row fetches of the smallest segments are unchanged. Any failure of this path (a value
connectorx cannot read) returns None and the caller falls back to the side's own SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from ot_core.quality.compare.sides import SideReader

# Keys read per Arrow chunk: memory stays bounded whatever the table (rows <= keys).
CHUNK_KEYS = 1_000_000
SENTINEL = -(2**63)  # the typing row's key (see ``_typing_row``)


class ArrowSegments:
    def __init__(self, reader: SideReader, url: str):
        import duckdb
        from duckdb_engine import Dialect

        from ot_core.engines import backend_for

        self.reader, self.url = reader, url
        self.duck = duckdb.connect()
        self.cs = backend_for(Dialect()).checksum()
        self.q = self.cs.backend.quote

    def close(self) -> None:
        """Close the in-process DuckDB (its memory and any spill files go with it)."""
        self.duck.close()

    @classmethod
    def for_reader(cls, reader: SideReader) -> ArrowSegments | None:
        from ot_core.pipeline.readers import connectorx_source

        if not reader.cs.hashes_in_python:
            return None
        if len(reader.side.relations) != 1 or reader.scope.key_lo is not None:
            return None  # one table read as is (a key-range scope: the side's own SQL)
        url = connectorx_source(reader.backend, reader.conn.engine.url)
        return None if url is None else cls(reader, url)

    def checksums(self, ranges: Sequence[tuple[int, int]], base: int,
                  width: int) -> dict[int, tuple[int, int]] | None:
        from ot_core.pipeline.readers import _read_ahead

        out: dict[int, list[int]] = {}
        bucket = self.cs.intdiv(f"t.{self.q(self.reader.key)} - {int(base)}", str(int(width)))
        row_hash = self.cs.row_hash(self.reader.contract.columns, "t")
        sql = (f"SELECT {bucket} AS b, COUNT(*) AS n, SUM({row_hash}) AS s "
               "FROM ot_side t GROUP BY 1")
        try:
            for _, table in _read_ahead(self._fetch, self._pages(ranges)):
                self.duck.register("ot_side", table)
                try:
                    for b, n, s in self.duck.execute(sql).fetchall():
                        acc = out.setdefault(int(b), [0, 0])
                        acc[0] += int(n)
                        acc[1] += int(s or 0)
                finally:
                    self.duck.unregister("ot_side")
        except Exception:  # noqa: BLE001 - any failure: the side's own SQL answers instead
            return None
        return {b: (n, s) for b, (n, s) in out.items()}

    def _pages(self, ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Literal SELECTs of the raw columns, at most ``CHUNK_KEYS`` keys and
        ``MAX_RANGES_PER_QUERY`` ranges each."""
        batches = self.reader.batches
        pieces: list[tuple[int, int]] = []
        lo_key, hi_key = self.reader.key_bounds or (None, None)
        for lo, hi in ranges:
            lo, hi = int(lo), int(hi)
            if lo_key is not None and hi_key is not None:  # the side's own keys
                lo, hi = max(lo, lo_key), min(hi, hi_key + 1)
            if hi - lo > CHUNK_KEYS * 1000:  # keys far sparser than rows: one read
                pieces.append((lo, hi))
                continue
            for start in range(lo, hi, CHUNK_KEYS):
                pieces.append((start, min(start + CHUNK_KEYS, hi)))
        group: list[tuple[int, int]] = []
        span = 0
        for piece in sorted(pieces):
            group.append(piece)
            span += piece[1] - piece[0]
            if span >= CHUNK_KEYS:
                yield from self._texts(batches(group))
                group, span = [], 0
        if group:
            yield from self._texts(batches(group))

    def _texts(self, parts: list[list[tuple[int, int]]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Straight from the table (connectorx types SQLite columns by their declared type,
        which a subquery would hide), the scope's filters and key ranges as integers."""
        r = self.reader
        q = r.backend.quote
        (schema, name), = r.side.relations
        cols = ", ".join(f"t.{q(c)}" for c in r.contract.column_names)
        scope = []
        plus = r.cs.scope_ref_prefix  # key ranges by the primary key, not the scope's index
        if r.scope.column:
            col = f"{plus}t.{q(r.scope.column)}"
            scope.append(f"{col} >= {int(r.base_params['scope_lo'])} AND "
                         f"{col} < {int(r.base_params['scope_hi'])}")
        key = f"t.{q(r.key)}"
        for part in parts:
            # inclusive upper ends: a range may end at 2**63, past BIGINT
            ranges = " OR ".join(f"({key} >= {int(lo)} AND {key} <= {int(hi) - 1})"
                                 for lo, hi in part)
            where = " AND ".join([f"({ranges})", *scope])
            yield (f"{self._typing_row()} UNION ALL "
                   f"SELECT {cols} FROM {r.backend.qualified(schema, name)} t WHERE {where}",
                   {})

    def _typing_row(self) -> str:
        """A first row of non-NULL values of each column's kind: connectorx types a SQLite
        column it does not know by name (NUMERIC, DECIMAL) from the first row, and a NULL
        there fails the read. Its key is ``SENTINEL``; ``_fetch`` drops it."""
        import sqlalchemy as sa

        values = []
        for c in self.reader.contract.columns:
            if c.name == self.reader.key:
                values.append(str(SENTINEL))
            elif isinstance(c.type, sa.Integer):
                values.append("0")
            elif isinstance(c.type, sa.Numeric):
                values.append("0.5")
            else:
                values.append("''")
        q = self.reader.backend.quote
        return "SELECT " + ", ".join(
            f"{v} AS {q(c.name)}" for v, c in zip(values, self.reader.contract.columns,
                                                  strict=True))

    def _fetch(self, text: str, options: dict[str, Any]) -> pa.Table:
        import connectorx as cx
        import numpy as np
        import pyarrow as pa

        table = cx.read_sql(self.url, text, return_type="arrow", **options)
        keys = table.column(self.reader.key).to_numpy()
        first = int(np.argmax(keys == SENTINEL))  # the typing row: exactly one is dropped
        if keys[first] != SENTINEL:
            raise ValueError("the typing row is missing")
        return pa.concat_tables([table.slice(0, first), table.slice(first + 1)])

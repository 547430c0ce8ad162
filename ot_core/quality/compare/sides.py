"""The two sides of a comparison and what one side computes inside its own database: the key
bounds in scope, one checksum per key segment, and the rows of the smallest segments.

A side is a list of relations read as one (``UNION ALL``): the source table, the
warehouse's mart plus every history table found in the catalog, or a legacy relation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.contract import TableContract
from ot_core.db.connect import Database
from ot_core.db.sql import Renderer
from ot_core.errors import UsageError

MAX_RANGES_PER_QUERY = 200  # bound parameters stay well under every driver's limit
# a checksum request spanning at least this many keys is split over the side's connections
SPLIT_MIN_KEYS = 1 << 20


@dataclass(frozen=True)
class Side:
    """One side of a comparison: relations (schema, table) of one database, read as one."""

    db: Database
    label: str
    relations: tuple[tuple[str | None, str], ...]


@dataclass(frozen=True)
class Scope:
    """Which rows are compared: a half-open range of one column and/or of the key."""

    column: str | None = None
    lower: int | None = None
    upper: int | None = None
    key_lo: int | None = None
    key_hi: int | None = None

    def describe(self) -> str:
        parts = []
        if self.column:
            parts.append(f"{self.column} in [{self.lower}, {self.upper})")
        if self.key_lo is not None:
            parts.append(f"key in [{self.key_lo}, {self.key_hi})")
        return " and ".join(parts) or "all rows"


@dataclass(frozen=True)
class Settings:
    first_segments: int = 65536
    fanout: int = 16
    leaf_rows: int = 256
    sample_keys: int = 10
    connections: int = 2  # per side, for the wide checksum scans (a server side only)


def _bound(value: int | None, name: str) -> int:
    """A scope bound the scope's column or key range needs."""
    if value is None:
        raise UsageError(f"compare scope: {name} is missing; give both ends of the range")
    return int(value)


class SideReader:
    """Renders and runs the compare templates for one side."""

    def __init__(self, side: Side, contract: TableContract, scope: Scope, conn: Connection,
                 *, segments: bool = True, connections: int = 1):
        self.side = side
        self.contract = contract
        self.conn = conn
        self.backend = side.db.backend
        self.cs = self.backend.checksum()
        self.cs.prepare(conn)
        self.r = Renderer(self.backend)
        self.key = contract.key[0]
        self.base_ctx = dict(
            relations=[self.backend.qualified(s, t) for s, t in side.relations],
            columns=contract.column_names, key=self.key,
            scope_column=scope.column,
            scope_ref_prefix=self.cs.scope_ref_prefix,
        )
        self.base_params: dict[str, int] = {}
        if scope.column:
            self.base_params.update(scope_lo=_bound(scope.lower, "lower"),
                                    scope_hi=_bound(scope.upper, "upper"))
        self.scope = scope
        self.key_bounds: tuple[int, int] | None = None  # the side's keys in scope, once read
        from ot_core.quality.compare.arrow import ArrowSegments

        # segment checksums over Arrow where the side hashes in Python (not needed by a
        # caller that only fetches rows)
        self.fast = ArrowSegments.for_reader(self) if segments else None
        # a server does the wide first-level scan on more than one core: the key span cut
        # into parts, one connection each (an embedded file keeps its one connection)
        self.connections = 1 if self.backend.embedded_file or self.fast else max(1, connections)
        self._more: list[Connection] = []

    def close(self) -> None:
        if self.fast is not None:
            self.fast.close()
        for c in self._more:
            c.close()
        self._more = []

    def bounds(self) -> tuple[int | None, int | None, int | None]:
        """The keys in scope, and how many rows: None when a column scope is absent, as the
        key index gives MIN and MAX without reading the rows (the first level counts them)."""
        key_range = self.scope.key_lo is not None
        count = self.scope.column is not None
        sql = self.r.render("compare/bounds.sql", key_range=key_range, count=count,
                            **self.base_ctx)
        params = dict(self.base_params)
        if key_range:
            params.update(key_lo=_bound(self.scope.key_lo, "key_lo"),
                          key_last=_bound(self.scope.key_hi, "key_hi") - 1)  # may be 2**63
        row = self.conn.execute(sa.text(sql), params).one()
        lo, hi = row[0], row[1]
        if lo is not None:
            self.key_bounds = (int(lo), int(hi))
        return (None if lo is None else int(lo), None if hi is None else int(hi),
                int(row[2]) if count else None)

    def _range_params(self, ranges: Sequence[tuple[int, int]]) -> dict[str, int]:
        params = dict(self.base_params)
        for i, (lo, hi) in enumerate(ranges):  # inclusive upper ends: a range may end at 2**63
            params[f"lo_{i}"], params[f"hi_{i}"] = int(lo), int(hi) - 1
        return params

    def checksums(self, ranges: Sequence[tuple[int, int]], base: int,
                  width: int) -> dict[int, tuple[int, int]]:
        if self.fast is not None:
            got = self.fast.checksums(ranges, base, width)
            if got is not None:
                return got
        parts = split_span(ranges, self.connections)
        if len(parts) == 1:
            return self._checksums(self.conn, ranges, base, width)
        while len(self._more) < len(parts) - 1:
            extra = self.side.db.engine.connect()
            self.cs.prepare(extra)
            self._more.append(extra)
        from concurrent.futures import ThreadPoolExecutor

        conns = [self.conn, *self._more]
        with ThreadPoolExecutor(max_workers=len(parts) - 1) as pool:
            later = [pool.submit(self._checksums, c, p, base, width)
                     for c, p in zip(conns[1:], parts[1:], strict=False)]
            results = [self._checksums(self.conn, parts[0], base, width)]
            results += [f.result() for f in later]
        out: dict[int, tuple[int, int]] = {}
        for part in results:  # a bucket cut between two parts: its counts and sums add up
            for b, (n, s) in part.items():
                n0, s0 = out.get(b, (0, 0))
                out[b] = (n0 + n, s0 + s)
        return out

    def _checksums(self, conn: Connection, ranges: Sequence[tuple[int, int]], base: int,
                   width: int) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        key_ref = f"t.{self.backend.quote(self.key)}"
        bucket = self.cs.intdiv(f"{key_ref} - {int(base)}", str(int(width)))
        row_hash = self.cs.row_hash(self.contract.columns, "t")
        for part in batches(ranges):
            sql = self.r.render("compare/segments.sql", bucket=bucket, row_hash=row_hash,
                                n_ranges=len(part), **self.base_ctx)
            for b, n, s in conn.execute(sa.text(sql), self._range_params(part)):
                out[int(b)] = (int(n), int(s or 0))
        return out

    def _fields(self) -> list[str]:
        return [self.cs.field(c, f"t.{self.backend.quote(c.name)}") for c in self.contract.columns]

    def rows(self, ranges: Sequence[tuple[int, int]]) -> list[tuple]:
        out: list[tuple] = []
        for part in batches(ranges):
            sql = self.r.render("compare/rows.sql", fields=self._fields(), n_ranges=len(part),
                                **self.base_ctx)
            out.extend(tuple(r) for r in self.conn.execute(sa.text(sql), self._range_params(part)))
        return out

    @staticmethod
    def batches(ranges: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """Ranges grouped for one statement each (a faster path reads them the same way)."""
        return batches(ranges)

    def render_all(self) -> list[str]:
        """Every statement this side would run (used to parse-check the Redshift SQL)."""
        key_ref = f"t.{self.backend.quote(self.key)}"
        return [
            self.r.render("compare/bounds.sql", key_range=True, count=True, **self.base_ctx),
            self.r.render("compare/segments.sql", bucket=self.cs.intdiv(f"{key_ref} - 1", "16"),
                          row_hash=self.cs.row_hash(self.contract.columns, "t"), n_ranges=2,
                          **self.base_ctx),
            self.r.render("compare/rows.sql", fields=self._fields(), n_ranges=2, **self.base_ctx),
            self.r.render("compare/bounds.sql", key_range=True, count=False, **self.base_ctx),
        ]


def split_span(ranges: Sequence[tuple[int, int]], parts: int) -> list[list[tuple[int, int]]]:
    """``ranges`` cut into ``parts`` lists spanning about as many keys each, when they span
    at least ``SPLIT_MIN_KEYS`` (else one list: a narrow request is not worth a second
    connection). Keys stand in for rows: the parts are equal when the keys are dense."""
    ordered = sorted(ranges)
    span = sum(hi - lo for lo, hi in ordered)
    if parts <= 1 or span < SPLIT_MIN_KEYS:
        return [list(ordered)]
    share = -(-span // parts)
    out: list[list[tuple[int, int]]] = [[]]
    room = share
    for lo, hi in ordered:
        while hi - lo > room and len(out) < parts:
            if room > 0:
                out[-1].append((lo, lo + room))
                lo += room
            out.append([])
            room = share
        if hi > lo:
            out[-1].append((lo, hi))
            room -= hi - lo
    return [p for p in out if p]


def batches(ranges: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Adjacent ranges joined, in groups small enough for one statement's parameters."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return [merged[i:i + MAX_RANGES_PER_QUERY] for i in range(0, len(merged), MAX_RANGES_PER_QUERY)]

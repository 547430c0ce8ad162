"""Compare two relations of the same contract table by key, cheaply, across engines.

Why this shape: the monthly comparison (docs/compare.md) must tell how far the warehouse
drifted from the source without copying either. Each side computes, inside its own
database, one checksum per key segment (``COUNT(*)`` and the sum of a normalised row hash,
see ``checksum.py``). Segments that agree are done; only the mismatching ones are split
(bisection by key range, ``fanout`` children each), and rows are fetched only for the
smallest mismatching segments. The data moved therefore grows with the number of segments
and differences, not with the table.

A side is a list of relations read as one (``UNION ALL``): the source table, the
warehouse's mart plus every history table found in the catalog, or a legacy relation named
in the config.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig, TimestampCDC
from ot_core.contract import CONTRACTS, TableContract
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database, opened
from ot_core.db.schema import WATERMARKS_TABLE, mart_name, tables_for
from ot_core.db.sql import Renderer
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import DataCheckFailed, UsageError
from ot_core.pipeline.control import Control
from ot_core.quality.checksum import checksum_dialect
from ot_core.timeutil import EARLIEST, LATEST, add_months, to_epoch, utcnow

MAX_RANGES_PER_QUERY = 200  # bound parameters stay well under every driver's limit


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
    # rows the pipeline could have extracted: cdc column below the watermark
    cdc_column: str | None = None
    cdc_upper: int | None = None

    def describe(self) -> str:
        parts = []
        if self.column:
            parts.append(f"{self.column} in [{self.lower}, {self.upper})")
        if self.key_lo is not None:
            parts.append(f"key in [{self.key_lo}, {self.key_hi})")
        if self.cdc_column:
            parts.append(f"{self.cdc_column} < {self.cdc_upper}")
        return " and ".join(parts) or "all rows"


@dataclass(frozen=True)
class Settings:
    first_segments: int = 65536
    fanout: int = 16
    leaf_rows: int = 256
    sample_keys: int = 10


@dataclass
class CompareReport:
    table: str
    source: str
    target: str
    scope: str
    rows_source: int = 0
    rows_target: int = 0
    missing: int = 0  # in source, not in target
    extra: int = 0  # in target, not in source (duplicates in the target count here too)
    changed: int = 0  # in both, some column differs
    not_extracted: int = 0  # changed at the source after the watermark: read next cycle
    mismatch_rate: float = 0.0
    rows_transferred: int = 0  # checksum rows + detail rows read from both sides
    checksum_queries: int = 0
    leaf_segments: int = 0
    changed_columns: dict[str, int] = field(default_factory=dict)
    sample_keys: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    keys: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def to_dict(self, with_keys: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_keys:
            d.pop("keys")
        return d


def _bound(value: int | None, name: str) -> int:
    """A scope bound the scope's column or key range needs."""
    if value is None:
        raise UsageError(f"compare scope: {name} is missing; give both ends of the range")
    return int(value)


class _Reader:
    """Renders and runs the compare templates for one side."""

    def __init__(self, side: Side, contract: TableContract, scope: Scope, conn: Connection):
        self.side = side
        self.contract = contract
        self.conn = conn
        self.backend = side.db.backend
        self.cs = checksum_dialect(self.backend)
        self.cs.prepare(conn)
        self.r = Renderer(self.backend)
        self.key = contract.key[0]
        self.base_ctx = dict(
            relations=[self.backend.qualified(s, t) for s, t in side.relations],
            columns=contract.column_names, key=self.key,
            scope_column=scope.column, cdc_column=scope.cdc_column,
            scope_ref_prefix=self.cs.scope_ref_prefix,
        )
        self.base_params: dict[str, int] = {}
        if scope.column:
            self.base_params.update(scope_lo=_bound(scope.lower, "lower"),
                                    scope_hi=_bound(scope.upper, "upper"))
        if scope.cdc_column:
            self.base_params["cdc_hi"] = _bound(scope.cdc_upper, "cdc_upper")
        self.scope = scope
        self.key_bounds: tuple[int, int] | None = None  # the side's keys in scope, once read
        from ot_core.quality.arrow_segments import ArrowSegments

        self.fast = ArrowSegments.for_reader(self)

    def close(self) -> None:
        if self.fast is not None:
            self.fast.close()

    def bounds(self) -> tuple[int | None, int | None, int]:
        key_range = self.scope.key_lo is not None
        sql = self.r.render("compare/bounds.sql", key_range=key_range, **self.base_ctx)
        params = dict(self.base_params)
        if key_range:
            params.update(key_lo=_bound(self.scope.key_lo, "key_lo"),
                          key_hi=_bound(self.scope.key_hi, "key_hi"))
        lo, hi, n = self.conn.execute(sa.text(sql), params).one()
        if lo is not None:
            self.key_bounds = (int(lo), int(hi))
        return (None if lo is None else int(lo), None if hi is None else int(hi), int(n))

    def _range_params(self, ranges: Sequence[tuple[int, int]]) -> dict[str, int]:
        params = dict(self.base_params)
        for i, (lo, hi) in enumerate(ranges):
            params[f"lo_{i}"], params[f"hi_{i}"] = int(lo), int(hi)
        return params

    def checksums(self, ranges: Sequence[tuple[int, int]], base: int,
                  width: int) -> dict[int, tuple[int, int]]:
        if self.fast is not None:
            got = self.fast.checksums(ranges, base, width)
            if got is not None:
                return got
        out: dict[int, tuple[int, int]] = {}
        key_ref = f"t.{self.backend.quote(self.key)}"
        bucket = self.cs.intdiv(f"{key_ref} - {int(base)}", str(int(width)))
        row_hash = self.cs.row_hash(self.contract.columns, "t")
        for part in _batches(ranges):
            sql = self.r.render("compare/segments.sql", bucket=bucket, row_hash=row_hash,
                                n_ranges=len(part), **self.base_ctx)
            for b, n, s in self.conn.execute(sa.text(sql), self._range_params(part)):
                out[int(b)] = (int(n), int(s or 0))
        return out

    def _fields(self) -> list[str]:
        return [self.cs.field(c, f"t.{self.backend.quote(c.name)}") for c in self.contract.columns]

    def rows(self, ranges: Sequence[tuple[int, int]]) -> list[tuple]:
        out: list[tuple] = []
        for part in _batches(ranges):
            sql = self.r.render("compare/rows.sql", fields=self._fields(), n_ranges=len(part),
                                **self.base_ctx)
            out.extend(tuple(r) for r in self.conn.execute(sa.text(sql), self._range_params(part)))
        return out

    def render_all(self) -> list[str]:
        """Every statement this side would run (used to parse-check the Redshift SQL)."""
        key_ref = f"t.{self.backend.quote(self.key)}"
        return [
            self.r.render("compare/bounds.sql", key_range=True, **self.base_ctx),
            self.r.render("compare/segments.sql", bucket=self.cs.intdiv(f"{key_ref} - 1", "16"),
                          row_hash=self.cs.row_hash(self.contract.columns, "t"), n_ranges=2,
                          **self.base_ctx),
            self.r.render("compare/rows.sql", fields=self._fields(), n_ranges=2, **self.base_ctx),
        ]


def _batches(ranges: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return [merged[i:i + MAX_RANGES_PER_QUERY] for i in range(0, len(merged), MAX_RANGES_PER_QUERY)]


def first_width(span: int, settings: Settings, rows: int) -> int:
    """A power of ``fanout`` giving at most ``first_segments`` segments (and no more than
    one per ``leaf_rows`` rows, so a small table is not cut into one-row segments):
    children then nest exactly inside their parent (width / fanout), so a split never
    re-reads a neighbour."""
    target = max(1, min(settings.first_segments, -(-rows // settings.leaf_rows)))
    width = 1
    while span > width * target:
        width *= settings.fanout
    return width


def compare_sides(contract: TableContract, source: Side, target: Side, scope: Scope = Scope(),
                  settings: Settings = Settings()) -> CompareReport:
    """Compare ``source`` and ``target`` over ``scope``; see the module docstring."""
    started = time.perf_counter()
    report = CompareReport(contract.name, source.label, target.label, scope.describe())
    by_column: Counter[int] = Counter()  # changed rows per column position
    with ExitStack() as open_:
        sc = open_.enter_context(source.db.engine.connect())
        tc = open_.enter_context(target.db.engine.connect())
        a = _Reader(source, contract, scope, sc)
        open_.callback(a.close)
        b = _Reader(target, contract, scope, tc)
        open_.callback(b.close)
        (a_lo, a_hi, report.rows_source), (b_lo, b_hi, report.rows_target) = _both(
            a.bounds, b.bounds)
        report.checksum_queries += 2
        report.rows_transferred += 2
        lows = [x for x in (a_lo, b_lo) if x is not None]
        if lows:
            base = min(lows)
            top = max(x for x in (a_hi, b_hi) if x is not None) + 1
            _bisect(a, b, base, top, settings, report,
                    max(report.rows_source, report.rows_target), by_column)
    names = contract.column_names
    report.changed_columns = dict(sorted(
        ((names[i], n) for i, n in by_column.items()), key=lambda kv: -kv[1]))
    for kind in ("missing", "extra", "changed"):
        report.keys.setdefault(kind, [])
        report.keys[kind].sort()
        report.sample_keys[kind] = report.keys[kind][: settings.sample_keys]
    diffs = report.missing + report.extra + report.changed
    report.mismatch_rate = diffs / max(report.rows_source, report.rows_target, 1)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _both(f: Callable[..., Any], g: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """Run the two sides' queries at the same time: they are different connections (often
    different servers), and the drivers release the GIL while the database works."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        later = pool.submit(g, *args)
        first = f(*args)
        return first, later.result()


def _bisect(a: _Reader, b: _Reader, base: int, top: int, settings: Settings,
            report: CompareReport, rows: int, by_column: Counter[int]) -> None:
    width = first_width(top - base, settings, rows)
    pending = [(base, top)]
    while pending:
        ca, cb = _both(a.checksums, b.checksums, pending, base, width)
        report.checksum_queries += 2
        report.rows_transferred += len(ca) + len(cb)
        leaves: list[tuple[int, int]] = []
        split: list[tuple[int, int]] = []
        for bucket in sorted(set(ca) | set(cb)):
            sa_, sb_ = ca.get(bucket), cb.get(bucket)
            if sa_ == sb_:
                continue
            seg = (base + bucket * width, min(base + (bucket + 1) * width, top))
            rows = max((sa_ or (0, 0))[0], (sb_ or (0, 0))[0])
            (leaves if rows <= settings.leaf_rows or width == 1 else split).append(seg)
        if leaves:
            report.leaf_segments += len(leaves)
            _diff_rows(*_both(a.rows, b.rows, leaves), report, by_column)
        pending = split
        width = max(1, width // settings.fanout)


def set_aside_not_extracted(report: CompareReport, src: Database, contract: TableContract,
                            cdc_column: str, mark: int) -> None:
    """Keys the warehouse holds that the source has changed since the watermark are not
    mismatches: their new version is simply not extracted yet (the next cycle reads it).
    They leave ``extra`` for ``not_extracted`` and the mismatch rate."""
    extra = report.keys.get("extra", [])
    if not extra:
        return
    key = src.backend.quote(contract.key[0])
    stmt = sa.text(f"SELECT {key} FROM {src.backend.qualified(None, contract.name)} "
                   f"WHERE {key} IN :keys AND {src.backend.quote(cdc_column)} >= :mark"
                   ).bindparams(sa.bindparam("keys", expanding=True))
    moved: set[int] = set()
    with src.engine.connect() as conn:
        for i in range(0, len(extra), 1000):
            part = [int(k) for k in extra[i:i + 1000]]
            moved |= {int(r[0]) for r in conn.execute(stmt, {"keys": part, "mark": int(mark)})}
    if not moved:
        return
    report.keys["extra"] = [k for k in extra if k not in moved]
    report.keys["not_extracted"] = sorted(moved)
    report.extra -= len(moved)
    report.not_extracted = len(moved)
    report.sample_keys["extra"] = report.keys["extra"][:len(report.sample_keys.get("extra", []))]
    report.sample_keys["not_extracted"] = report.keys["not_extracted"][:10]
    report.mismatch_rate = (report.missing + report.extra + report.changed) / max(
        report.rows_source, report.rows_target, 1)


def _diff_rows(left: list[tuple], right: list[tuple], report: CompareReport,
               cols: Counter[int]) -> None:
    report.rows_transferred += len(left) + len(right)
    lmap: dict[int, list[tuple]] = defaultdict(list)
    rmap: dict[int, list[tuple]] = defaultdict(list)
    for row in left:
        lmap[int(row[0])].append(row[1:])
    for row in right:
        rmap[int(row[0])].append(row[1:])
    for key in set(lmap) | set(rmap):
        ls, rs = lmap.get(key, []), rmap.get(key, [])
        if not rs:
            report.missing += len(ls)
            report.keys.setdefault("missing", []).append(key)
            continue
        if not ls:
            report.extra += len(rs)
            report.keys.setdefault("extra", []).append(key)
            continue
        if len(rs) > len(ls):  # a key twice in the target (mart and history, say)
            report.extra += len(rs) - len(ls)
            report.keys.setdefault("extra", []).append(key)
        lrow, rrow = ls[0], rs[0]
        if lrow != rrow:
            report.changed += 1
            report.keys.setdefault("changed", []).append(key)
            for i, (x, y) in enumerate(zip(lrow, rrow, strict=True)):
                if x != y:
                    cols[i] += 1


# -- the monthly job: sides from the config, results kept, failure above the rate ------------
TABLE_ALIASES = {"ecs": "ecs_order_info", "uti": "uni_tracking_info", "uts": "uni_tracking_spath"}


class CompareFailed(DataCheckFailed):
    """The mismatch rate is above ``compare.max_mismatch_rate``."""


def resolve_table(name: str) -> str:
    table = TABLE_ALIASES.get(name, name)
    if table not in CONTRACTS:
        raise UsageError(f"table {name!r} is not known; use one of: "
                         f"{', '.join(TABLE_ALIASES)} (or {', '.join(CONTRACTS)})")
    return table


def month_bounds(month: str) -> tuple[int, int]:
    """'2026-10' → epoch seconds [2026-10-01, 2026-11-01) UTC."""
    try:
        start = datetime.strptime(month.strip(), "%Y-%m").replace(tzinfo=UTC)
    except (ValueError, AttributeError):
        raise UsageError(f"month {month!r} is not understood; use YYYY-MM, e.g. 2026-10") from None
    if not EARLIEST <= start < LATEST:
        raise UsageError(f"month {month!r} is outside {EARLIEST.year}-{LATEST.year - 1}: source "
                         "times are unix epoch seconds")
    return to_epoch(start), to_epoch(add_months(start, 1))


def parse_key_range(text: str) -> tuple[int, int]:
    """'1000:2000' → (1000, 2000), half-open."""
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError:
        raise UsageError(f"key range {text!r} is not understood; use LO:HI, e.g. 1000:2000") from None
    if hi <= lo:
        raise UsageError(f"key range {text!r} is empty; HI must be above LO")
    if lo < -(2**63) or hi > 2**63 - 1:
        raise UsageError(f"key range {text!r} is outside BIGINT; keys are signed 64-bit integers")
    return lo, hi


def warehouse_side(conn: Connection, cfg: PipelineConfig, wh: Database, table: str) -> Side:
    """The mart plus every history table of ``table`` the catalog shows now."""
    rels = [(cfg.schemas.mart, mart_name(table))]
    rels += [(cfg.schemas.mart, h.name) for h in history_tables(conn, cfg, wh.backend, table)]
    label = f"warehouse {wh.display} ({len(rels) - 1} history tables)"
    return Side(wh, label, tuple(rels))


def legacy_side(cfg: PipelineConfig, wh: Database, table: str) -> Side:
    rel = cfg.compare.legacy.get(table)
    if not rel:
        raise UsageError(f"no legacy relation for {table}: add compare.legacy.{table}: "
                         "schema.relation to the config")
    schema, name = rel.split(".")
    return Side(wh, f"legacy {rel}", ((schema, name),))


def _watermark(conn: Connection, cfg: PipelineConfig, wh: Database, table: str) -> int | None:
    if WATERMARKS_TABLE not in wh.backend.list_tables(conn, cfg.schemas.control, WATERMARKS_TABLE):
        return None
    return Control.for_config(cfg, wh.backend).watermark(conn, table)


def run_compare(table: str, *, month: str | None = None, key_range: str | None = None,
                against: str = "source", config: PipelineConfig | str | None = None,
                source: Database | str | None = None,
                warehouse: Warehouse | Database | str | None = None,
                record: bool = True, fail: bool = True) -> CompareReport:
    """Compare one table for a month (archive column) or key range; keep and judge the result.

    ``against='source'`` compares the source table with the warehouse (mart + history),
    limited to rows the pipeline could have extracted (CDC column below the watermark);
    ``against='legacy'`` compares the relation named in ``compare.legacy`` with it.
    """
    table = resolve_table(table)
    with using(config, warehouse) as wh, ExitStack() as stack:
        src = stack.enter_context(opened("source", source)) if against == "source" else None
        return _run_compare(wh, src, table, month, key_range, against, record, fail)


def _run_compare(wh: Warehouse, src: Database | None, table: str, month: str | None,
                 key_range: str | None, against: str, record: bool, fail: bool) -> CompareReport:
    cfg = wh.cfg
    tcfg = cfg.table(table)
    scope = dict[str, Any]()
    if month:
        lo, hi = month_bounds(month)
        scope.update(column=tcfg.archive_column, lower=lo, upper=hi)
    if key_range:
        scope["key_lo"], scope["key_hi"] = parse_key_range(key_range)
    with wh.connect() as conn:
        target = warehouse_side(conn, cfg, wh.db, table)
        mark = _watermark(conn, cfg, wh.db, table)
    if against == "source" and src is not None:
        left = Side(src, f"source {src.display}", ((None, table),))
        if mark is not None and isinstance(tcfg.cdc, TimestampCDC):
            scope.update(cdc_column=tcfg.cdc.column, cdc_upper=mark)
    elif against == "legacy":
        left = legacy_side(cfg, wh.db, table)
    else:
        raise UsageError(f"against={against!r}: use 'source' or 'legacy'")
    c = cfg.compare
    settings = Settings(c.first_segments, c.fanout, c.leaf_rows, c.sample_keys)
    report = compare_sides(CONTRACTS[table], left, target, Scope(**scope), settings)
    if src is not None and mark is not None and scope.get("cdc_column"):
        set_aside_not_extracted(report, src, CONTRACTS[table], scope["cdc_column"], mark)
    failed = report.mismatch_rate > c.max_mismatch_rate
    if record:
        record_result(cfg, wh.db, report, month=month, against=against,
                      status="failed" if failed else "ok")
    if failed and fail:
        raise CompareFailed(
            f"{table}: mismatch rate {report.mismatch_rate:.4%} is above "
            f"compare.max_mismatch_rate {c.max_mismatch_rate:.4%} (missing {report.missing}, "
            f"extra {report.extra}, changed {report.changed}; sample keys "
            f"{report.sample_keys})")
    return report




def record_result(cfg: PipelineConfig, wh: Database, report: CompareReport, *,
                  month: str | None, against: str, status: str) -> None:
    t = tables_for(cfg, wh.backend).compare_results
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(t).values(
            run_id=uuid.uuid4().hex, run_at=utcnow().replace(tzinfo=None, microsecond=0),
            table_name=report.table, against=against, month=month, scope=report.scope[:500],
            rows_source=report.rows_source, rows_target=report.rows_target,
            missing=report.missing, extra=report.extra, changed=report.changed,
            rows_transferred=report.rows_transferred, mismatch_rate=report.mismatch_rate,
            seconds=report.seconds, changed_columns=json.dumps(report.changed_columns)[:2000],
            sample_keys=json.dumps(report.sample_keys)[:4000], status=status))


def load_results(cfg: PipelineConfig, wh: Database) -> pd.DataFrame:
    """Every kept comparison, oldest first (empty when none was recorded yet)."""
    t = tables_for(cfg, wh.backend).compare_results
    with wh.engine.connect() as conn:
        if t.name not in wh.backend.list_tables(conn, cfg.schemas.control, t.name):
            return pd.DataFrame(columns=[c.name for c in t.columns])
        rows = conn.execute(sa.select(t).order_by(t.c.run_at)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in t.columns])


@dataclass
class Monthly:
    """One monthly job run: a report per table; ``ecs_drift`` = ECS rows changed at the
    source after extraction (docs/compare.md#ecs-drift)."""

    month: str
    reports: list[CompareReport]
    max_rate: float

    @property
    def frame(self) -> pd.DataFrame:
        keep = ("table", "rows_source", "rows_target", "missing", "extra", "changed",
                "mismatch_rate", "rows_transferred", "seconds", "changed_columns")
        return pd.DataFrame([{k: r.to_dict()[k] for k in keep} for r in self.reports])

    @property
    def ecs_drift(self) -> int | None:
        return next((r.changed for r in self.reports if r.table == "ecs_order_info"), None)

    @property
    def failed(self) -> list[str]:
        return [r.table for r in self.reports if r.mismatch_rate > self.max_rate]

    def raise_if_failed(self) -> None:
        if self.failed:
            raise CompareFailed(f"{self.month}: mismatch rate above {self.max_rate:.4%} for "
                                f"{', '.join(self.failed)} (see the table above)")


def run_monthly(month: str | None = None, tables: Sequence[str] = ("ecs", "uti", "uts"), *,
                config: PipelineConfig | str | None = None, source: Database | str | None = None,
                warehouse: Warehouse | Database | str | None = None) -> Monthly:
    """Compare every table for ``month`` (default: the previous one), keeping each result.

    ``tables`` is a list, or one string of names separated by commas or spaces (a job
    parameter given on the command line)."""
    if isinstance(tables, str):
        tables = [x for x in tables.replace(",", " ").split() if x]
    names = [resolve_table(t) for t in tables]  # every name checked before any work
    month = month or add_months(utcnow().replace(day=1), -1).strftime("%Y-%m")
    month_bounds(month)
    with using(config, warehouse) as wh, opened("source", source) as src:
        reports = [run_compare(t, month=month, config=wh.cfg, source=src, warehouse=wh,
                               fail=False) for t in names]
        return Monthly(month, reports, wh.cfg.compare.max_mismatch_rate)

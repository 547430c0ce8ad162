"""Compare two sides by key, cheaply: checksums per key segment computed inside each
database, bisecting only the segments that disagree.

Each side reduces a key segment to ``COUNT(*)`` and the sum of a normalised row hash
(``quality/checksum.py``). Segments that agree are done; only the mismatching ones are
split (``fanout`` children each), and rows are fetched only for the smallest mismatching
segments. The data moved grows with the number of segments and differences, not with the
table.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

from ot_core.contract import TableContract
from ot_core.quality.compare.sides import Scope, Settings, Side, SideReader


@dataclass
class CompareReport:
    table: str
    source: str
    target: str
    scope: str
    rows_source: int = 0
    rows_target: int = 0
    # rows the warehouse holds wrong (known-wrong: the pipeline will not correct them):
    missing: int = 0  # in source, not in target
    extra: int = 0  # in target, not in source (duplicates in the target count here too)
    changed: int = 0  # in both, some column differs
    # differences the next cycles settle on their own (see ``classify`` in run.py):
    pending: int = 0  # changed at the source after what the cycles have read: read next
    future: int = 0  # stamped after the source's own clock: read once the clock passes it
    mismatch_rate: float = 0.0  # known-wrong rows over the rows compared
    rows_transferred: int = 0  # checksum rows + detail rows read from both sides
    checksum_queries: int = 0
    leaf_segments: int = 0
    changed_columns: dict[str, int] = field(default_factory=dict)
    sample_keys: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    future_until: str | None = None  # the latest future stamp (UTC), when there are some
    run_id: str | None = None  # the kept result's id (``ot repair --from-compare``)
    status: str | None = None  # the judgment: ok, wrong or failed (``judge.py``)
    sample: int = 10  # keys shown per category
    keys: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def to_dict(self, with_keys: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_keys:
            d.pop("keys")
        return d

    @property
    def wrong(self) -> int:
        """Rows the warehouse holds wrong and no cycle will correct."""
        return self.missing + self.extra + self.changed

    def differing_keys(self) -> list[int]:
        """Every key found different, whatever its category (what a repair re-reads)."""
        return sorted({k for kind in KINDS for k in self.keys.get(kind, [])})

    def settle(self) -> None:
        """Sort the keys, cut the samples and compute the rate once the counts are final."""
        for kind in KINDS:
            self.keys.setdefault(kind, [])
            self.keys[kind] = sorted(set(self.keys[kind]))
            self.sample_keys[kind] = self.keys[kind][:self.sample]
        self.mismatch_rate = self.wrong / max(self.rows_source, self.rows_target, 1)


# every category of key a report lists; "duplicate" keys are also counted in ``extra``
KINDS = ("missing", "extra", "changed", "duplicate", "pending", "future")


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


def compare_sides(contract: TableContract, source: Side, target: Side,
                  scope: Scope | None = None, settings: Settings | None = None) -> CompareReport:
    """Compare ``source`` and ``target`` over ``scope``; see the module docstring."""
    scope, settings = scope or Scope(), settings or Settings()
    started = time.perf_counter()
    report = CompareReport(contract.name, source.label, target.label, scope.describe())
    report.sample = settings.sample_keys
    by_column: Counter[int] = Counter()  # changed rows per column position
    with ExitStack() as open_:
        sc = open_.enter_context(source.db.engine.connect())
        tc = open_.enter_context(target.db.engine.connect())
        a = SideReader(source, contract, scope, sc, connections=settings.connections)
        open_.callback(a.close)
        b = SideReader(target, contract, scope, tc, connections=settings.connections)
        open_.callback(b.close)
        (a_lo, a_hi, a_rows), (b_lo, b_hi, b_rows) = _both(a.bounds, b.bounds)
        counted = a_rows is not None and b_rows is not None
        report.rows_source, report.rows_target = a_rows or 0, b_rows or 0
        report.checksum_queries += 2
        report.rows_transferred += 2
        lows = [x for x in (a_lo, b_lo) if x is not None]
        if lows:
            base = min(lows)
            top = max(x for x in (a_hi, b_hi) if x is not None) + 1
            # not counted yet (no column scope): as many rows as keys, at most; the first
            # level's counts are the rows
            rows = max(report.rows_source, report.rows_target) if counted else top - base
            # key - base must fit a BIGINT in every engine: keys on both sides of zero
            # spanning more than that are bisected as two halves
            halves = [(base, 0), (0, top)] if base < 0 < top and top - base > 2**63 - 1 \
                else [(base, top)]
            for lo, hi in halves:
                _bisect(a, b, lo, hi, settings, report, rows, by_column, count=not counted)
    names = contract.column_names
    report.changed_columns = dict(sorted(
        ((names[i], n) for i, n in by_column.items()), key=lambda kv: -kv[1]))
    report.sample = settings.sample_keys
    report.settle()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _both(f: Callable[..., Any], g: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """Run the two sides' queries at the same time: they are different connections (often
    different servers), and the drivers release the GIL while the database works."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        later = pool.submit(g, *args)
        first = f(*args)
        return first, later.result()


def _bisect(a: SideReader, b: SideReader, base: int, top: int, settings: Settings,
            report: CompareReport, rows: int, by_column: Counter[int], *,
            count: bool = False) -> None:
    """Bisect [base, top); with ``count``, the first level (every row in it) gives the rows
    of each side."""
    width = first_width(top - base, settings, rows)
    pending = [(base, top)]
    while pending:
        ca, cb = _both(a.checksums, b.checksums, pending, base, width)
        report.checksum_queries += 2
        report.rows_transferred += len(ca) + len(cb)
        if count:
            report.rows_source += sum(n for n, _ in ca.values())
            report.rows_target += sum(n for n, _ in cb.values())
            count = False
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
            diff_rows(*_both(a.rows, b.rows, leaves), report, by_column)
        pending = split
        width = max(1, width // settings.fanout)


def diff_rows(left: list[tuple], right: list[tuple], report: CompareReport,
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
            report.keys.setdefault("duplicate", []).append(key)
        lrow, rrow = ls[0], rs[0]
        if lrow != rrow:
            report.changed += 1
            report.keys.setdefault("changed", []).append(key)
            for i, (x, y) in enumerate(zip(lrow, rrow, strict=True)):
                if x != y:
                    cols[i] += 1



"""What a comparison's differences mean, and the one judgment of a report.

A difference is *known wrong* when no cycle will ever correct it: the source row's CDC value
is below what the cycles have read (the watermark minus the lookback), or the source has no
row at all. Two other kinds settle on their own and are reported apart, never as clean and
never counted in the mismatch rate:

- *pending*: the source row changed at or after the next cycle's window start (or its CDC
  value is NULL: every cycle reads those): the next cycle reads it;
- *future*: the source row is stamped after the source's own clock: a cycle reads it once
  the clock passes that stamp, not before.

The judgment (``judge``) is the only place a report becomes a status and an exit code:
``ot compare``, the monthly job and ``ot repair`` all ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ot_core.contract import TableContract
from ot_core.db.connect import Database
from ot_core.quality.compare.bisect import CompareReport
from ot_core.timeutil import from_epoch, iso

KEYS_PER_QUERY = 1000

OK, WRONG, FAILED = "ok", "wrong", "failed"


@dataclass(frozen=True)
class Horizon:
    """Where the cycles stand for one table: rows whose CDC value is at or after
    ``pending_from`` are read by the next cycle, rows after ``clock + skew`` only once the
    source's clock passes them."""

    cdc_column: str
    pending_from: int  # the watermark minus the lookback: the next window's start
    clock: int  # the source's clock, epoch seconds
    skew: int  # how far a cycle may run ahead of that clock (cycle.clock_skew_seconds)


def classify(report: CompareReport, src: Database, contract: TableContract,
             horizon: Horizon) -> None:
    """Move the differing keys that the next cycles settle from missing/changed/extra to
    ``pending`` or ``future``, looking each one up at the source by key (outside the
    comparison's scope: a row updated out of the compared month is still the same row)."""
    keys = sorted({k for kind in ("missing", "changed", "extra")
                   for k in report.keys.get(kind, [])} - set(report.keys.get("duplicate", [])))
    if not keys:
        return
    key = src.backend.quote(contract.key[0])
    cdc = src.backend.quote(horizon.cdc_column)
    stmt = sa.text(f"SELECT {key}, {cdc} FROM {src.backend.qualified(None, contract.name)} "
                   f"WHERE {key} IN :keys").bindparams(sa.bindparam("keys", expanding=True))
    stamp: dict[int, int | None] = {}
    with src.engine.connect() as conn:
        for i in range(0, len(keys), KEYS_PER_QUERY):
            part = [int(k) for k in keys[i:i + KEYS_PER_QUERY]]
            stamp.update({int(r[0]): None if r[1] is None else int(r[1])
                          for r in conn.execute(stmt, {"keys": part})})
    settled: dict[int, str] = {}
    for k in keys:
        if k not in stamp:
            continue  # no source row: the warehouse holds a row it should not
        value = stamp[k]
        if value is not None and value > horizon.clock + horizon.skew:
            settled[k] = "future"
        elif value is None or value >= horizon.pending_from:
            settled[k] = "pending"
    for kind in ("missing", "changed", "extra"):
        moved = [k for k in report.keys.get(kind, []) if k in settled]
        if not moved:
            continue
        report.keys[kind] = [k for k in report.keys[kind] if k not in settled]
        setattr(report, kind, getattr(report, kind) - len(moved))
        for k in moved:
            report.keys.setdefault(settled[k], []).append(k)
    report.pending = len(set(report.keys.get("pending", [])))
    report.future = len(set(report.keys.get("future", [])))
    report.settle()
    if report.future:
        report.future_until = iso(from_epoch(max(v for k, v in stamp.items()
                                                 if settled.get(k) == "future" and v)))


@dataclass(frozen=True)
class Verdict:
    """``ok``: the warehouse holds what the source holds, apart from what the next cycles
    read on their own; ``wrong``: rows are known wrong (``ot repair`` restores them);
    ``failed``: more than ``compare.max_mismatch_rate`` of the rows are wrong — something
    systematic, which an automatic repair does not paper over."""

    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == OK


def judge(report: CompareReport, max_rate: float) -> Verdict:
    """The status of ``report``: any known-wrong row makes it ``wrong`` (or ``failed``
    above the rate), whatever the rate."""
    settles = []
    if report.pending:
        settles.append(f"{report.pending} changed at the source after the last cycle's read "
                       "(the next cycle reads them)")
    if report.future:
        settles.append(f"{report.future} stamped after the source's clock (read once the "
                       f"clock passes {report.future_until})")
    tail = f"; {'; '.join(settles)}" if settles else ""
    if not report.wrong:
        return Verdict(OK, f"{report.table}: no row known wrong{tail}")
    what = (f"{report.table}: {report.wrong} row(s) known wrong (missing {report.missing}, "
            f"extra {report.extra}, changed {report.changed}; sample keys "
            f"{ {k: v for k, v in report.sample_keys.items() if v and k not in ('pending', 'future')} })")
    fix = f"; run `ot repair --from-compare {report.run_id}`" if report.run_id else \
        "; run `ot repair` for this table and scope"
    if report.mismatch_rate > max_rate:
        return Verdict(FAILED, f"{what}: mismatch rate {report.mismatch_rate:.4%} is above "
                               f"compare.max_mismatch_rate {max_rate:.4%}{fix}{tail}")
    return Verdict(WRONG, f"{what}{fix}{tail}")

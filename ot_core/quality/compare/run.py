"""One comparison as ``ot compare`` runs it: the sides from the config, the scope from the
options, the result kept in the control schema and judged.
"""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig, TimestampCDC
from ot_core.contract import CONTRACTS
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database, opened
from ot_core.db.schema import WATERMARKS_TABLE, mart_name, tables_for
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import CompareFailed, UsageError
from ot_core.pipeline.control import Control
from ot_core.quality.compare.bisect import KINDS, CompareReport, compare_sides
from ot_core.quality.compare.judge import Horizon, classify, judge
from ot_core.quality.compare.sides import Scope, Settings, Side
from ot_core.timeutil import EARLIEST, LATEST, add_months, to_epoch, utcnow

TABLE_ALIASES = {"ecs": "ecs_order_info", "uti": "uni_tracking_info", "uts": "uni_tracking_spath"}


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
    if lo < -(2**63) or hi > 2**63:
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
                record: bool = True, fail: bool = True, scope: Scope | None = None
                ) -> CompareReport:
    """Compare one table for a month (archive column) or key range; keep and judge the result.

    ``against='source'`` compares every source row with the warehouse (mart + history),
    telling rows known wrong from those the next cycles read on their own
    (``judge.classify``); ``against='legacy'`` compares the relation named in
    ``compare.legacy`` with it. With ``fail``, a report that is not ``ok`` raises
    CompareFailed (exit 1) after it was kept. ``scope`` replaces month and key range.
    """
    table = resolve_table(table)
    with using(config, warehouse) as wh, ExitStack() as stack:
        src = stack.enter_context(opened("source", source)) if against == "source" else None
        scope = scope or scope_of(wh.cfg, table, month, key_range)
        return _run_compare(wh, src, table, scope, month, against, record, fail)


def scope_of(cfg: PipelineConfig, table: str, month: str | None,
             key_range: str | None) -> Scope:
    """The rows a month (by the archive column) and a key range select."""
    scope = dict[str, Any]()
    if month:
        lo, hi = month_bounds(month)
        scope.update(column=cfg.table(table).archive_column, lower=lo, upper=hi)
    if key_range:
        scope["key_lo"], scope["key_hi"] = parse_key_range(key_range)
    return Scope(**scope)


def _run_compare(wh: Warehouse, src: Database | None, table: str, scope: Scope,
                 month: str | None, against: str, record: bool, fail: bool) -> CompareReport:
    cfg = wh.cfg
    tcfg = cfg.table(table)
    with wh.connect() as conn:
        target = warehouse_side(conn, cfg, wh.db, table)
        mark = _watermark(conn, cfg, wh.db, table)
    if against == "source" and src is not None:
        left = Side(src, f"source {src.display}", ((None, table),))
    elif against == "legacy":
        left = legacy_side(cfg, wh.db, table)
    else:
        raise UsageError(f"against={against!r}: use 'source' or 'legacy'")
    c = cfg.compare
    settings = Settings(c.first_segments, c.fanout, c.leaf_rows, c.sample_keys,
                        c.connections_per_side)
    report = compare_sides(CONTRACTS[table], left, target, scope, settings)
    if src is not None and isinstance(tcfg.cdc, TimestampCDC):
        with src.engine.connect() as sconn:
            clock = src.backend.clock(sconn)
        # never read yet: everything is for the first cycle to read
        start = clock + 1 if mark is None else mark - tcfg.cdc.lookback_seconds
        classify(report, src, CONTRACTS[table], Horizon(
            tcfg.cdc.column, start, clock, cfg.cycle.clock_skew_seconds))
    elif src is not None and mark is not None:  # full refresh: every cycle reads every row
        for kind in ("missing", "changed", "extra"):
            report.keys.setdefault("pending", []).extend(report.keys.get(kind, []))
            report.keys[kind] = []
            setattr(report, kind, 0)
        report.pending = len(set(report.keys["pending"]))
        report.settle()
    if record:
        report.run_id = uuid.uuid4().hex[:12]
    verdict = judge(report, c.max_mismatch_rate)
    report.status = verdict.status
    if record:
        record_result(cfg, wh.db, report, month=month, against=against)
    if not verdict.ok and fail:
        raise CompareFailed(verdict.message)
    return report


def record_result(cfg: PipelineConfig, wh: Database, report: CompareReport, *,
                  month: str | None, against: str) -> None:
    """Keep the result, and its differing keys (up to ``compare.keep_keys``) for a repair."""
    tables = tables_for(cfg, wh.backend)
    t, k = tables.compare_results, tables.compare_keys
    keys = [{"run_id": report.run_id, "kind": kind, "key_value": int(key)}
            for kind in KINDS for key in report.keys.get(kind, [])][:cfg.compare.keep_keys]
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(t).values(
            run_id=report.run_id, run_at=utcnow().replace(tzinfo=None, microsecond=0),
            table_name=report.table, against=against, month=month, scope=report.scope[:500],
            rows_source=report.rows_source, rows_target=report.rows_target,
            missing=report.missing, extra=report.extra, changed=report.changed,
            pending=report.pending, future=report.future,
            rows_transferred=report.rows_transferred, mismatch_rate=report.mismatch_rate,
            seconds=report.seconds, changed_columns=json.dumps(report.changed_columns)[:2000],
            sample_keys=json.dumps(report.sample_keys)[:4000], status=report.status,
            keys_kept=len(keys)))
        for i in range(0, len(keys), 10_000):
            conn.execute(sa.insert(k), keys[i:i + 10_000])


def load_keys(cfg: PipelineConfig, wh: Database, run_id: str) -> tuple[str, dict[str, list[int]]]:
    """The table and the differing keys (by kind) a kept comparison found."""
    tables = tables_for(cfg, wh.backend)
    t, k = tables.compare_results, tables.compare_keys
    with wh.engine.connect() as conn:
        row = conn.execute(sa.select(t.c.table_name, t.c.keys_kept, t.c.missing, t.c.extra,
                                     t.c.changed, t.c.pending, t.c.future)
                           .where(t.c.run_id == run_id)).first()
        if row is None:
            raise UsageError(f"no comparison {run_id!r} was kept: the id is the one `ot compare` "
                             "printed (`ot compare --json` gives it as run_id)")
        rows = conn.execute(sa.select(k.c.kind, k.c.key_value).where(k.c.run_id == run_id))
        keys: dict[str, list[int]] = {}
        for kind, key in rows:
            keys.setdefault(kind, []).append(int(key))
    found = sum(int(x or 0) for x in row[2:])
    if row.keys_kept is not None and int(row.keys_kept) < found:
        raise UsageError(f"comparison {run_id} found {found} differing rows but kept "
                         f"{row.keys_kept} keys (compare.keep_keys): repair by scope instead "
                         "(`ot repair --table T --month M` or `--key-range LO:HI`)")
    return str(row[0]), keys


def load_results(cfg: PipelineConfig, wh: Database) -> pd.DataFrame:
    """Every kept comparison, oldest first (empty when none was recorded yet)."""
    t = tables_for(cfg, wh.backend).compare_results
    with wh.engine.connect() as conn:
        if t.name not in wh.backend.list_tables(conn, cfg.schemas.control, t.name):
            return pd.DataFrame(columns=[c.name for c in t.columns])
        rows = conn.execute(sa.select(t).order_by(t.c.run_at)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in t.columns])

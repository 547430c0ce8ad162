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
from ot_core.contract import CONTRACTS, TableContract
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database, opened
from ot_core.db.schema import WATERMARKS_TABLE, mart_name, tables_for
from ot_core.db.warehouse import Warehouse, using
from ot_core.errors import CompareFailed, UsageError
from ot_core.pipeline.control import Control
from ot_core.quality.compare.bisect import CompareReport, compare_sides
from ot_core.quality.compare.sides import Scope, Settings, Side
from ot_core.timeutil import EARLIEST, LATEST, add_months, to_epoch, utcnow


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



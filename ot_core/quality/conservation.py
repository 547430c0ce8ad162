"""The conservation invariant (docs/lifecycle.md#conservation-invariant), as a checker.

Every source row extracted so far (its CDC column before the last cycle's as_of) must be in
exactly one of its mart or one of its history tables, with the content of its latest
version; no warehouse key may exist that the source lacks; and no mart row may be older
than the cutoff unless an open exception names it (order rows of orders still active in
mart_uni_tracking_info excepted: they are archived only once the order is inactive).

The check compares the whole source with the whole warehouse from scratch, independent of
how the cycle got there: tests run it after every cycle; monitoring can run it on a copy or
on a bounded set of orders (``order_ids``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from ot_core.config import PipelineConfig, TimestampCDC
from ot_core.contract import CONTRACTS, TableContract
from ot_core.db.catalog import history_tables
from ot_core.db.connect import Database
from ot_core.db.schema import EXCEPTIONS_TABLE, mart_name
from ot_core.pipeline.exception_log import ROUTING_GAP
from ot_core.pipeline.lifecycle import ACTIVE_TABLE, GATED_TABLE
from ot_core.pipeline.periods import cutoff


@dataclass
class Report:
    checked: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _norm(contract: TableContract, row: Iterable) -> tuple:
    out: list[object] = []
    for col, v in zip(contract.columns, row, strict=True):
        if v is None:
            out.append(None)
        elif isinstance(col.type, sa.Numeric) and not isinstance(col.type, sa.Integer):
            out.append(Decimal(str(v)).quantize(Decimal("0.01")))
        elif isinstance(col.type, sa.Integer):
            out.append(int(v))
        else:
            out.append(str(v).rstrip())
    return tuple(out)


def _in_clause(key: str, order_ids: list[int] | None) -> tuple[str, dict]:
    if order_ids is None:
        return "", {}
    names = {f"o{i}": int(o) for i, o in enumerate(order_ids)}
    if not names:
        return " AND 1 = 0", {}
    return f" AND order_id IN ({', '.join(':' + n for n in names)})", names


def check_conservation(source: Database, warehouse: Database, cfg: PipelineConfig,
                       as_of: int, order_ids: list[int] | None = None) -> Report:
    """Compare source and warehouse at ``as_of`` (epoch seconds of the last cycle)."""
    rep = Report()
    cut = cutoff(as_of, cfg.retention_months)
    sb, wb = source.backend, warehouse.backend
    with source.engine.connect() as sconn, warehouse.engine.connect() as wconn:
        for table in cfg.tables:
            contract = CONTRACTS[table]
            tcfg = cfg.table(table)
            key_i = contract.column_names.index(contract.key[0])
            cols = ", ".join(sb.quote(c) for c in contract.column_names)
            where = " WHERE 1 = 1"
            params: dict = {}
            if isinstance(tcfg.cdc, TimestampCDC):
                where += f" AND {sb.quote(tcfg.cdc.column)} < :as_of"
                params["as_of"] = as_of
            extra, ids = _in_clause("order_id", order_ids)
            src = {}
            for r in sconn.execute(sa.text(f"SELECT {cols} FROM {sb.quote(table)}{where}{extra}"),
                                   {**params, **ids}):
                src[int(r[key_i])] = _norm(contract, r)
            rep.checked[table] = len(src)
            wcols = ", ".join(wb.quote(c) for c in contract.column_names)
            places = [mart_name(table)] + [h.name for h in history_tables(wconn, cfg, wb, table)]
            seen: dict[int, list[str]] = {}
            content: dict[int, tuple] = {}
            mart_old: set[int] = set()
            arch = contract.column_names.index(tcfg.archive_column)
            for place in places:
                rel = wb.qualified(cfg.schemas.mart, place)
                w_extra, w_ids = _in_clause("order_id", order_ids)
                for r in wconn.execute(sa.text(f"SELECT {wcols} FROM {rel} WHERE 1 = 1{w_extra}"),
                                       w_ids):
                    k = int(r[key_i])
                    seen.setdefault(k, []).append(place)
                    content[k] = _norm(contract, r)
                    if place == places[0] and int(r[arch]) < cut:
                        mart_old.add(k)
            for k, row in src.items():
                where_k = seen.get(k, [])
                if len(where_k) != 1:
                    rep.violations.append(f"{table} key {k} is in {len(where_k)} places: {where_k}")
                elif content[k] != row:
                    rep.violations.append(f"{table} key {k} in {where_k[0]} differs from the "
                                          f"source: {content[k]} != {row}")
            for k in sorted(set(seen) - set(src)):
                rep.violations.append(f"{table} key {k} is in {seen[k]} but not in the source")
            if mart_old:
                rep.violations += _unexcused(wconn, cfg, warehouse, table, mart_old, cut)
    return rep


def _unexcused(wconn, cfg: PipelineConfig, wh: Database, table: str, old: set[int],
               cut: int) -> list[str]:
    wb = wh.backend
    exc = wb.qualified(cfg.schemas.mart, EXCEPTIONS_TABLE)
    excused = {int(r[0]) for r in wconn.execute(sa.text(
        f"SELECT row_key FROM {exc} WHERE source_table = :t AND exception_type = :x "
        "AND resolved_at IS NULL AND row_key IS NOT NULL"), {"t": table, "x": ROUTING_GAP})}
    if table == GATED_TABLE:
        active = wb.qualified(cfg.schemas.mart, mart_name(ACTIVE_TABLE))
        excused |= {int(r[0]) for r in wconn.execute(sa.text(f"SELECT order_id FROM {active}"))}
    return [f"{table} key {k} is in the mart older than the cutoff {cut} without an open "
            "exception" for k in sorted(old - excused)]

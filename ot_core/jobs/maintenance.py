"""Maintenance: vacuum or checkpoint only where the warehouse's own numbers say so.

The legacy pipeline ran VACUUM every night whether it was needed or not
(docs/legacy-defects.md#4-unconditional-nightly-vacuum). Here each warehouse kind (a registry
keyed by the backend's registry name) measures first and logs every decision with its
numbers in ``<control>.ot_maintenance_log``:

- Redshift: ``svv_table_info.unsorted`` per table; VACUUM SORT ONLY above a threshold. That
  view needs a grant; without it the unsortedness is *estimated* from the pipeline's own
  counts — rows merged into the mart since its last vacuum (``ot_batches.rows_merged``)
  over the mart's rows — and the decision says it was estimated and why.
- PostgreSQL: dead-tuple ratio from ``pg_stat_user_tables``; VACUUM (ANALYZE) above a
  threshold, on an autocommit connection (VACUUM cannot run inside a transaction).
- DuckDB: CHECKPOINT (folds the write-ahead log into the file; cheap).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.db.connect import Database
from ot_core.db.schema import mart_name
from ot_core.db.warehouse import Warehouse, using
from ot_core.engines import Backend
from ot_core.errors import PermissionMissing
from ot_core.pipeline.control import Control
from ot_core.secrets import redact
from ot_core.timeutil import utcnow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("ot.maintenance")


@dataclass
class Limits:
    unsorted_pct: float = 10.0  # Redshift: VACUUM SORT ONLY above this % unsorted
    dead_ratio: float = 0.10  # PostgreSQL: VACUUM (ANALYZE) above this dead/(live+dead)
    min_dead_tuples: int = 1000  # ... and at least this many dead tuples


@dataclass
class Decision:
    table: str
    action: str  # the statement to run, or "skip"
    method: str  # where the numbers came from
    reason: str
    figures: dict = field(default_factory=dict)
    executed: bool = False


@dataclass
class Plan:
    method: str  # how it decided, in a sentence (the notebook prints it)
    decisions: list[Decision]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{**{k: v for k, v in asdict(d).items() if k != "figures"},
                              **d.figures} for d in self.decisions])


def _marts(cfg: PipelineConfig) -> list[str]:
    return [mart_name(t) for t in cfg.tables]


# -- Redshift ----------------------------------------------------------------------------------
UNSORTED_SQL = ('SELECT "table", unsorted, tbl_rows FROM {view} WHERE "schema" = :schema')


def read_unsorted(conn: Connection, schema: str, view: str = "svv_table_info") -> dict[str, dict]:
    """``unsorted`` % per table of ``schema``; PermissionMissing when the view is not granted."""
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            rows = conn.execute(sa.text(UNSORTED_SQL.format(view=view)), {"schema": schema}).fetchall()
    except sa.exc.ProgrammingError as e:
        if "permission denied" in str(e.orig).lower():
            raise PermissionMissing(
                f"no SELECT on {view}: GRANT it (or sys:monitor) to the warehouse user to measure "
                "unsorted rows") from None
        raise
    return {r[0]: {"unsorted_pct": float(r[1] or 0), "rows": int(r[2] or 0)} for r in rows}


def estimate_unsorted(conn: Connection, cfg: PipelineConfig, backend: Backend,
                      last_vacuum: dict[str, datetime]) -> dict[str, dict]:
    """Rows merged since the mart's last vacuum over its row count, as a % (upper bound:
    a merge appends its rows unsorted at the end of the table)."""
    b = Control.for_config(cfg, backend).batches
    out = {}
    for table in cfg.tables:
        mart = mart_name(table)
        q = sa.select(sa.func.coalesce(sa.func.sum(b.c.rows_merged), 0)).where(
            b.c.table_name == table, b.c.status == "merged")
        if mart in last_vacuum:
            q = q.where(b.c.merged_at > last_vacuum[mart])
        merged = int(conn.execute(q).scalar_one())
        total = int(conn.execute(sa.text(
            f"SELECT COUNT(*) FROM {backend.qualified(cfg.schemas.mart, mart)}")).scalar_one())
        pct = 100.0 * min(merged, total) / total if total else 0.0
        out[mart] = {"unsorted_pct": round(pct, 2), "rows": total, "rows_merged_since_vacuum": merged,
                     "last_vacuum": str(last_vacuum.get(mart, "never"))}
    return out


def plan_sort_vacuum(conn: Connection, cfg: PipelineConfig, backend: Backend, limits: Limits,
                     last_vacuum: dict[str, datetime], render: Callable[[str], str],
                     view: str = "svv_table_info") -> Plan:
    """The Redshift decision, on either branch (view readable, or estimated)."""
    try:
        measured = read_unsorted(conn, cfg.schemas.mart, view)
        method = f"measured: {view}.unsorted (the warehouse's own figure)"
        source = view
    except PermissionMissing as e:
        measured = estimate_unsorted(conn, cfg, backend, last_vacuum)
        method = (f"estimated: {e} — so unsorted % is estimated as rows merged since the last "
                  "vacuum (ot_batches.rows_merged) over the mart's rows")
        source = "estimate"
    decisions = []
    for mart in _marts(cfg):
        fig = measured.get(mart, {"unsorted_pct": 0.0, "rows": 0})
        over = fig["unsorted_pct"] > limits.unsorted_pct
        decisions.append(Decision(
            mart, render(mart) if over else "skip", source,
            f"unsorted {fig['unsorted_pct']:.1f}% {'>' if over else '<='} {limits.unsorted_pct}%",
            fig))
    return Plan(method, decisions)


class Maintainer:
    """How one engine measures and maintains; each engine module defines its own subclass
    (``ot_core/engines``) and names it as its ``maintainer``."""

    def __init__(self, db: Database, cfg: PipelineConfig, limits: Limits):
        self.db, self.cfg, self.limits = db, cfg, limits

    def plan(self, conn: Connection, last_vacuum: dict[str, datetime]) -> Plan:
        raise NotImplementedError

    def run(self, decision: Decision) -> None:
        """Run one statement outside any transaction (VACUUM refuses to run inside one)."""
        with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(decision.action)


# -- the job -----------------------------------------------------------------------------------


def last_vacuums(conn: Connection, t: sa.Table) -> dict[str, datetime]:
    rows = conn.execute(sa.select(t.c.table_name, sa.func.max(t.c.decided_at))
                        .where(t.c.executed.is_(True), t.c.action != "skip")
                        .group_by(t.c.table_name)).fetchall()
    return {r[0]: r[1] for r in rows}


def run_maintenance(*, limits: Limits | None = None, dry_run: bool = False,
                    config: PipelineConfig | str | None = None,
                    warehouse: Warehouse | Database | str | None = None) -> Plan:
    """Measure, decide, log every decision with its numbers, run what was decided."""
    with using(config, warehouse) as wh:
        m = wh.backend.maintainer(wh.db, wh.cfg, limits or Limits())
        t = wh.tables.maintenance_log
        with wh.connect() as conn:
            with conn.begin():
                wh.ensure(conn)
                last = last_vacuums(conn, t)
            plan = m.plan(conn, last)
            if conn.in_transaction():
                conn.commit()
        for d in plan.decisions:
            if d.action != "skip" and not dry_run:
                m.run(d)
                d.executed = True
            log.info("maintenance %s: %s (%s) — %s %s", d.table, d.action, d.method, d.reason,
                     json.dumps(d.figures, default=str))
        with wh.connect() as conn, conn.begin():
            now = utcnow().replace(tzinfo=None)
            for d in plan.decisions:
                conn.execute(sa.insert(t).values(
                    decided_at=now, table_name=d.table, action=d.action, executed=d.executed,
                    method=d.method, reason=redact(d.reason)[:2000],
                    figures=json.dumps(d.figures, default=str)[:4000]))
    return plan


def show(plan: Plan) -> None:
    from IPython.display import Markdown, display

    from ot_core.jobs import show_figures

    display(Markdown(f"**How it decided:** {plan.method}"))
    display(plan.frame())
    show_figures({"method": plan.method.split(":")[0],
                  "decisions": {d.table: d.action for d in plan.decisions},
                  "executed": sum(d.executed for d in plan.decisions)})

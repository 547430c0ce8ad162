"""Maintenance: vacuum or checkpoint only where the warehouse's own numbers say so.

The legacy pipeline ran VACUUM every night whether it was needed or not
(docs/legacy-defects.md#4-unconditional-nightly-vacuum). Here each warehouse engine measures
first (its ``Maintainer`` in ``ot_core/engines``) and every decision is logged with its
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
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.db.connect import Database
from ot_core.db.schema import mart_name
from ot_core.db.warehouse import Warehouse, using
from ot_core.engines.strategies import Decision, Limits, Maintainer, MaintenanceSite, Plan
from ot_core.pipeline.control import Control
from ot_core.secrets import redact
from ot_core.timeutil import utcnow

log = logging.getLogger("ot.maintenance")

__all__ = ["Decision", "Limits", "Plan", "maintainer", "run_maintenance", "show"]


def maintainer(wh: Warehouse, limits: Limits | None = None) -> Maintainer:
    """The warehouse engine's maintainer, with what it may need of the pipeline's records."""
    batches = Control.for_config(wh.cfg, wh.backend).batches
    table_of = {mart_name(t): t for t in wh.cfg.tables}

    def rows_merged_since(conn: Connection, mart: str, since: datetime | None) -> int:
        q = sa.select(sa.func.coalesce(sa.func.sum(batches.c.rows_merged), 0)).where(
            batches.c.table_name == table_of[mart], batches.c.status == "merged")
        if since is not None:
            q = q.where(batches.c.merged_at > since)
        return int(conn.execute(q).scalar_one())

    s = wh.cfg.schemas
    site = MaintenanceSite(engine=wh.engine, mart_schema=s.mart, raw_schema=s.raw,
                           control_schema=s.control, marts=tuple(table_of),
                           rows_merged_since=rows_merged_since)
    return wh.backend.maintainer(site, limits or Limits())


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
        m = maintainer(wh, limits)
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

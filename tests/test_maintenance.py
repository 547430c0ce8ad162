"""Maintenance decisions on real warehouses: PostgreSQL dead tuples, the Redshift branch
(view readable, or not granted → estimate) fed by real catalog queries, DuckDB CHECKPOINT."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.db.sql import parse_check
from ot_core.db.warehouse import Warehouse
from ot_core.jobs.maintenance import Limits, maintainer, run_maintenance
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def test_postgres_vacuums_by_dead_tuple_ratio(pg_url):
    eng = _admin(pg_url)
    with eng.connect() as c:
        c.exec_driver_sql("CREATE SCHEMA settlement_ods")
        for name in ("churned", "quiet"):
            c.exec_driver_sql(f"CREATE TABLE settlement_ods.{name} (id int)")
            c.exec_driver_sql(f"INSERT INTO settlement_ods.{name} SELECT generate_series(1, 5000)")
        c.exec_driver_sql("DELETE FROM settlement_ods.churned WHERE id <= 3000")
        c.exec_driver_sql("DELETE FROM settlement_ods.quiet WHERE id <= 10")
        c.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    plan = run_maintenance(warehouse=pg_url, limits=Limits(dead_ratio=0.2, min_dead_tuples=100))
    by = {d.table: d for d in plan.decisions}
    churn, quiet = by["settlement_ods.churned"], by["settlement_ods.quiet"]
    assert churn.figures["dead_tuples"] == 3000 and churn.figures["live_tuples"] == 2000
    assert churn.action == 'VACUUM (ANALYZE) "settlement_ods"."churned"' and churn.executed
    assert quiet.action == "skip" and not quiet.executed and "dead 10 of 5000" in quiet.reason
    with eng.connect() as c:
        c.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        n_vac, = c.exec_driver_sql("SELECT vacuum_count FROM pg_stat_user_tables "
                                   "WHERE relname = 'churned'").one()
        logged = c.exec_driver_sql("SELECT table_name, action, executed, figures FROM "
                                   "settlement_ctl.ot_maintenance_log ORDER BY table_name").fetchall()
    assert n_vac >= 1
    assert [(r[0], r[2]) for r in logged if r[0].endswith(("churned", "quiet"))] == [
        ("settlement_ods.churned", True), ("settlement_ods.quiet", False)]
    assert '"dead_tuples": 3000' in next(r[3] for r in logged if r[0].endswith("churned"))
    eng.dispose()


def test_redshift_branch_measured_or_estimated_without_the_grant(servers):
    simulate("2026-03-03", start="2026-03-01", orders_per_day=40, seed=9, source=servers.source_url)
    run_cycle("2026-03-03T00:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)
    cfg = load_config()
    rs = open_database("warehouse", "redshift+psycopg2://etl@example.invalid:5439/dev")
    m = maintainer(Warehouse(cfg, rs), Limits(unsorted_pct=10))
    m.view = "admin.svv_table_info"  # type: ignore[attr-defined]
    parse_check(m.statement("mart_ecs_order_info"), "redshift")  # type: ignore[attr-defined]
    role = f"ot_noview_{uuid.uuid4().hex[:8]}"
    eng = _admin(servers.warehouse_url)
    with eng.connect() as c:  # a stand-in for the system view, with Redshift's column names
        c.exec_driver_sql('CREATE SCHEMA admin; CREATE TABLE admin.svv_table_info '
                          '("schema" varchar, "table" varchar, unsorted float, tbl_rows bigint)')
        c.exec_driver_sql("INSERT INTO admin.svv_table_info VALUES "
                          "('settlement_ods', 'mart_ecs_order_info', 35.0, 100), "
                          "('settlement_ods', 'mart_uni_tracking_spath', 2.5, 400), "
                          "('other', 'mart_ecs_order_info', 99.0, 1)")
        c.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        c.exec_driver_sql(f"GRANT USAGE ON SCHEMA settlement_ods, settlement_ctl, admin TO {role}")
        c.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA settlement_ods, settlement_ctl TO {role}")
    try:
        with eng.connect() as c:  # branch 1: the view is readable
            plan = m.plan(c, {})
        by = {d.table: d for d in plan.decisions}
        assert plan.method.startswith("measured")
        assert by["mart_ecs_order_info"].action == \
            'VACUUM SORT ONLY "settlement_ods"."mart_ecs_order_info" TO 100 PERCENT'
        assert "35.0% > 10" in by["mart_ecs_order_info"].reason
        assert by["mart_uni_tracking_spath"].action == "skip"
        assert by["mart_uni_tracking_info"].action == "skip"  # not in the view: 0 %

        limited = sa.create_engine(sa.engine.make_url(servers.warehouse_url).set(username=role))
        with limited.connect() as c:  # branch 2: same query, a role without the grant
            with pytest.raises(sa.exc.ProgrammingError):
                c.exec_driver_sql("SELECT 1 FROM admin.svv_table_info")
            c.rollback()
            plan2 = m.plan(c, {})
        limited.dispose()
        by2 = {d.table: d for d in plan2.decisions}
        assert plan2.method.startswith("estimated") and "GRANT" in plan2.method
        ecs = by2["mart_ecs_order_info"]
        assert ecs.method == "estimate"
        assert ecs.figures["rows_merged_since_vacuum"] == ecs.figures["rows"] > 0
        assert ecs.figures["unsorted_pct"] == 100.0 and ecs.action.startswith("VACUUM SORT ONLY")
        # a vacuum after the last merge: nothing merged since, nothing to sort
        with limited.connect() as c:
            plan3 = m.plan(c, {mart: datetime(2100, 1, 1) for mart in by2})
        limited.dispose()
        assert all(d.action == "skip" and d.figures["unsorted_pct"] == 0 for d in plan3.decisions)
    finally:
        with eng.connect() as c:
            c.exec_driver_sql(f"DROP OWNED BY {role}")
            c.exec_driver_sql(f"DROP ROLE {role}")
        eng.dispose()


def test_duckdb_checkpoints(embedded):
    plan = run_maintenance(warehouse=embedded.warehouse_url)
    assert [(d.action, d.executed) for d in plan.decisions] == [("CHECKPOINT", True)]
    assert plan.method.startswith("DuckDB")
    dry = run_maintenance(warehouse=embedded.warehouse_url, dry_run=True)
    assert not dry.decisions[0].executed

"""Without the grant to create history tables (a real PostgreSQL role lacking CREATE on the
mart schema), the cycle goes on: rows stay in the mart under exceptions, and the warning —
like ``ot rotate``'s error — names the missing grant."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from support.db import dml_role, run_sql
from support.lifecycle import Source, T, config, wh_rows

from ot_core.errors import PermissionMissing
from ot_core.pipeline.cycle import run_cycle
from ot_core.pipeline.periods import rotate

pytestmark = pytest.mark.servers
SCHEMAS = ("settlement_public", "settlement_ods", "settlement_ctl")


def test_cycle_without_create_grant_keeps_rows_under_exceptions(pg_url, tmp_path):
    src_url = f"sqlite:///{tmp_path}/source.sqlite"
    src = Source(src_url)
    src.order(1, T("2026-01-10"))  # inactive order, no tracking state
    src.order(2, T("2026-01-10") + 5)
    src.state(2, T("2026-01-11"), 40)
    # the owner sets the warehouse up, with rotation off: no history tables exist yet
    run_cycle("2026-02-01", config=config(False), source=src_url, warehouse=pg_url)
    with dml_role(pg_url, SCHEMAS) as as_role:
        role = sa.engine.make_url(as_role).username
        res = run_cycle("2026-08-01", config=config(True), source=src_url, warehouse=as_role)
        warnings = res.lifecycle["warnings"]
        assert len(warnings) == 1 and "CREATE on schema settlement_ods" in warnings[0]
        assert res.lifecycle["history_tables_created"] == []
        assert res.lifecycle["rows_trimmed"] == 0
        opened = wh_rows(pg_url, "SELECT source_table, row_key FROM "
                                 "settlement_ods.order_tracking_exceptions "
                                 "WHERE resolved_at IS NULL ORDER BY 1, 2")
        assert opened == [("ecs_order_info", 1), ("uni_tracking_info", 2)]
        assert wh_rows(pg_url, "SELECT order_id FROM settlement_ods.mart_ecs_order_info "
                               "ORDER BY 1") == [(1,), (2,)]
        with pytest.raises(PermissionMissing, match="CREATE on schema settlement_ods"):
            rotate("2026-08-01", config=config(True), warehouse=as_role)
        # the owner rotates; the next cycle as the role archives and resolves
        rotate("2026-08-01", config=config(True), warehouse=pg_url)
        run_sql(pg_url, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
                        f"settlement_ods TO {role}")
        res = run_cycle("2026-08-02", config=config(False), source=src_url, warehouse=as_role)
        assert res.lifecycle["rows_trimmed"] == 3 and res.lifecycle["exceptions_resolved"] == 2

"""Every lifecycle statement rendered for Redshift parses with sqlglot's redshift dialect,
and every DELETE is correlated to its target (sqlalchemy-redshift would drop that
correlation and delete every row, docs/contracts.md#sql-dialect-policy: so the templates
must carry it)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2
from sqlglot import exp
from support.lifecycle import config

from ot_core.db.schema import ddl
from ot_core.db.sql import parse_check
from ot_core.engines import backend_for
from ot_core.pipeline.lifecycle import render_lifecycle
from ot_core.pipeline.periods import Period, hist_table

REDSHIFT = backend_for(RedshiftDialect_psycopg2())
TABLES = ("uni_tracking_info", "uni_tracking_spath", "ecs_order_info")
HISTS = [Period(2025, 2), Period(2026, 1)]


def _statements(table: str) -> dict[str, str]:
    return render_lifecycle(config(), REDSHIFT, table, [p.table(table) for p in HISTS])


def _target_name(stmt: exp.Delete | exp.Update) -> str:
    return stmt.this.name


def _correlated(stmt: exp.Expression) -> bool:
    """Some EXISTS subquery of the WHERE clause references the target table by name."""
    target = _target_name(stmt)
    where = stmt.args.get("where")
    assert where is not None, "a lifecycle DELETE/UPDATE without WHERE"
    for sub in where.find_all(exp.Exists):
        if any(col.table == target for col in sub.find_all(exp.Column)):
            return True
    return False


@pytest.mark.parametrize("table", TABLES)
def test_redshift_statements_parse_and_deletes_are_correlated(table):
    stmts = _statements(table)
    steps = {k.split(":")[0] for k in stmts}
    assert {"reactivate", "archive", "trim", "safety_check", "resolve_exceptions"} <= steps
    deletes = 0
    for name, sql in stmts.items():
        tree = parse_check(sql, "redshift")
        assert "NOT IN (" not in sql.upper()
        if isinstance(tree, exp.Delete | exp.Update):
            deletes += isinstance(tree, exp.Delete)
            assert _correlated(tree), f"{name} is not correlated to its target:\n{sql}"
    assert deletes >= 2 * len(HISTS)


def test_correlation_check_catches_an_uncorrelated_delete():
    """The AST walk above is not vacuous: the statement sqlalchemy-redshift would produce
    (target repeated in the subquery's FROM, no outer reference) is flagged."""
    bad = sqlglot.parse_one(
        'DELETE FROM "s"."mart_x" WHERE EXISTS (SELECT 1 FROM "s"."hist_x" h, "s"."mart_x" '
        'WHERE h.id = h.id)', read="redshift")
    assert not _correlated(bad)


def test_history_ddl_has_redshift_dist_and_sort_keys():
    text = ddl(hist_table(config(), REDSHIFT, "ecs_order_info", Period(2026, 1)), REDSHIFT)
    assert "hist_ecs_order_info_2026_h1" in text
    assert "DISTKEY (order_id)" in text and "SORTKEY (partner_id, add_time)" in text
    assert "_raw_id" in text and "PRIMARY KEY (order_id)" in text
    parse_check(text, "redshift")

"""Redshift: no cluster here, so every statement the cycle would send is compiled and parsed.

DDL comes from the warehouse model through sqlalchemy-redshift (DISTKEY/SORTKEY checked in
the text); step SQL comes from the templates in ``sql/`` and must parse with sqlglot's
redshift dialect. Every DELETE ... WHERE EXISTS must stay correlated to its target table
(sqlalchemy-redshift silently drops that correlation when such a DELETE is built from
expressions, which on Redshift deletes every row: docs/contracts.md#sql-dialect-policy).
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2
from sqlglot import exp

from ot_core.config import RedshiftConfig, load_config
from ot_core.contract import CONTRACTS
from ot_core.db.schema import all_tables, ddl, keyed_table, names, raw_table
from ot_core.db.sql import SQL_DIR, Renderer, parse_check
from ot_core.engines import backend_for
from ot_core.engines.strategies import LoadSite
from ot_core.pipeline import lifecycle
from ot_core.pipeline.land import raw_columns, render_drop_unchanged_overlap
from ot_core.pipeline.merge import render_merge

CFG = load_config()
RS = backend_for(RedshiftDialect_psycopg2())


def cycle_statements() -> dict[str, str]:
    """Every warehouse statement a cycle renders, by a readable name."""
    out: dict[str, str] = {}
    r = Renderer(RS)
    load = RS.batch_load(LoadSite(render=r.render, redshift=RedshiftConfig(
        s3_uri="s3://ot-stage/p/", iam_role="arn:aws:iam::123456789012:role/copy")))
    for table in CFG.tables:
        for step, sql in render_merge(CFG, RS, table).items():
            out[f"{table}:{step}"] = sql
        out[f"{table}:land/drop_unchanged_overlap.sql"] = render_drop_unchanged_overlap(
            CFG, RS, table)
        out[f"{table}:land/copy_parquet.sql"] = load.copy_sql(CFG.schemas.raw, f"{table}_raw")
        out[f"{table}:raw/trim.sql"] = r.render("raw/trim.sql", raw=names(CFG, RS, table).raw)
        render_lc = getattr(lifecycle, "render_lifecycle", None)
        if render_lc is not None:
            hists = [f"hist_{table}_2026_h1", f"hist_{table}_2026_h2"]
            for step, sql in render_lc(CFG, RS, table, hists).items():
                out[f"{table}:lifecycle/{step}"] = sql
    return out


STATEMENTS = cycle_statements()


def test_backend_is_redshift():
    assert RS.name == "redshift" and RS.quote("pathTime") == '"pathTime"'


@pytest.mark.parametrize("table", all_tables(CFG, RS), ids=lambda t: f"{t.schema}.{t.name}")
def test_every_warehouse_table_compiles_for_redshift(table):
    text = ddl(table, RS)
    assert text.startswith("CREATE TABLE IF NOT EXISTS") and f"{table.schema}.{table.name}" in text
    for col in table.columns:
        assert re.search(rf"\b{re.escape(col.name)}\b", text), col.name
    if table.name.startswith(("mart_", "hist_")):
        assert "DISTKEY (order_id)" in text


def test_ecs_mart_and_history_keys():
    mart = next(t for t in all_tables(CFG, RS) if t.name == "mart_ecs_order_info")
    text = re.sub(r"\s+", " ", ddl(mart, RS))
    assert "DISTSTYLE KEY DISTKEY (order_id) SORTKEY (partner_id, add_time)" in text
    hist = keyed_table(CONTRACTS["ecs_order_info"], sa.MetaData(), CFG.schemas.mart,
                       "hist_ecs_order_info_2026_h1", "hist", RS)
    assert "DISTKEY (order_id) SORTKEY (partner_id, add_time)" in re.sub(r"\s+", " ", ddl(hist, RS))


def test_the_cycle_renders_every_step():
    kinds = {name.split(":", 1)[1] for name in STATEMENTS}
    assert {"merge/stage.sql", "merge/delete_replaced.sql", "merge/drop_superseded.sql",
            "merge/insert.sql", "merge/drop_stage.sql", "land/drop_unchanged_overlap.sql",
            "land/copy_parquet.sql", "raw/trim.sql"} <= kinds


@pytest.mark.parametrize("table", sorted(CFG.tables))
def test_the_copy_loads_the_raw_table_from_a_manifest(table):
    """One COPY per table per batch: into the raw table, from the bound manifest URL, with
    the bound IAM role, Parquet, MANIFEST; the batch is handed over in the raw table's
    declared column order (COPY from Parquet loads by position)."""
    tree = parse_check(STATEMENTS[f"{table}:land/copy_parquet.sql"], "redshift")
    assert isinstance(tree, exp.Copy)
    assert (tree.this.db, tree.this.name) == (CFG.schemas.raw, f"{table}_raw")
    assert [f.sql() for f in tree.args["files"]] == [":manifest"]
    assert tree.args["credentials"].args["iam_role"].sql() == ":iam_role"
    assert {p.this.name.upper() for p in tree.args["params"]} == {"FORMAT", "MANIFEST"}
    declared = raw_table(CONTRACTS[table], sa.MetaData(), CFG.schemas.raw, RS)
    assert raw_columns(table) == [c.name for c in declared.columns]


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_parses_for_redshift(name):
    tree = parse_check(STATEMENTS[name], "redshift")
    assert tree is not None and not isinstance(tree, exp.Command), "parsed only as a raw command"


def _correlation_problems(sql: str) -> list[str]:
    """For a DELETE: each EXISTS subquery must reference the target table and not list it in
    its own FROM (listing it would make the subquery uncorrelated)."""
    tree = parse_check(sql, "redshift")
    if not isinstance(tree, exp.Delete):
        return []
    target = tree.this.name
    problems = []
    for ex in tree.find_all(exp.Exists):
        sub = ex.this
        listed = {t.name for t in sub.find_all(exp.Table)}
        refs = {c.table for c in sub.find_all(exp.Column)}
        if target in listed:
            problems.append(f"{target} is in the subquery's FROM")
        if target not in refs:
            problems.append(f"the subquery never references {target}")
    return problems


def test_every_exists_delete_is_correlated():
    checked = 0
    for name, sql in STATEMENTS.items():
        assert _correlation_problems(sql) == [], name
        tree = parse_check(sql, "redshift")
        checked += isinstance(tree, exp.Delete) and any(True for _ in tree.find_all(exp.Exists))
    # merge (2 per table) and land (1 per table) at least: the check is not vacuous
    assert checked >= 3 * len(CFG.tables)


def test_correlation_check_catches_the_sqlalchemy_redshift_pitfall():
    """The check itself works: the DELETE sqlalchemy-redshift compiles from expressions (the
    target silently added to the subquery's FROM, so it deletes every row) is reported, and
    the template form of the same statement passes."""
    md = sa.MetaData()
    mart = sa.Table("mart_x", md, sa.Column("k", sa.Integer), schema="s")
    stage = sa.Table("stage_x", md, sa.Column("k", sa.Integer))
    stmt = sa.delete(mart).where(sa.exists().where(stage.c.k == mart.c.k))
    compiled = str(stmt.compile(dialect=RS.dialect))
    assert "mart_x is in the subquery's FROM" in _correlation_problems(compiled)
    assert _correlation_problems("DELETE FROM s.mart_x WHERE EXISTS (SELECT 1 FROM stage_x "
                                 "WHERE stage_x.k = mart_x.k)") == []


NOT_IN = re.compile(r"\bnot\s+in\s*\(", re.IGNORECASE)


def test_no_not_in_anywhere_under_sql():
    files = [p for p in SQL_DIR.rglob("*") if p.is_file()]
    assert files
    offenders = [str(p.relative_to(SQL_DIR)) for p in files if NOT_IN.search(p.read_text())]
    assert offenders == [], "NOT IN ( is banned in sql/ (NULLs make it drop every row)"
    assert not any(NOT_IN.search(s) for s in STATEMENTS.values())
    assert NOT_IN.search("where x NOT\n  IN  (select 1)")  # the pattern itself matches

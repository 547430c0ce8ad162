"""Comparison engine: injected differences are counted exactly on every engine pair, and
identical data gives the identical checksum everywhere (types normalised)."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from support.compare_data import ecs_rows, inject, write_source, write_warehouse

from ot_core.contract import ECS
from ot_core.db.connect import open_database
from ot_core.db.sql import parse_check
from ot_core.quality.checksum import field_text, row_hash, row_text
from ot_core.quality.compare import Scope, Settings, Side, SideReader, compare_sides

N = 2400
SMALL = Settings(first_segments=8, fanout=4, leaf_rows=24, sample_keys=5)


def _check(report, expected, rows=N):
    assert report.rows_source == rows
    assert report.rows_target == rows - expected["missing"] + expected["extra"]
    assert report.missing == expected["missing"]
    assert report.extra == expected["extra"]
    assert report.changed == expected["changed"]
    assert report.changed_columns == expected["changed_columns"]
    assert report.mismatch_rate == (3 + 2 + 5) / rows
    # bisection reached leaves below the first level, and read far fewer rows than exist
    assert report.checksum_queries > 4
    assert report.rows_transferred < rows / 2
    assert len(report.sample_keys["missing"]) == 3


def _warehouse_pair(url: str) -> tuple[Side, Side]:
    rows = ecs_rows(N)
    write_warehouse(url, "legacy_ods", "ecs_copy", rows)
    write_warehouse(url, "settlement_ods", "mart_ecs_order_info", rows)
    db = open_database("warehouse", url)
    left = Side(db, "legacy", (("legacy_ods", "ecs_copy"),))
    right = Side(db, "new", (("settlement_ods", "mart_ecs_order_info"),))
    return left, right


def test_identical_copies_match(tmp_path):
    left, right = _warehouse_pair(f"duckdb:///{tmp_path}/w.duckdb")
    rep = compare_sides(ECS, left, right, settings=SMALL)
    assert (rep.missing, rep.extra, rep.changed, rep.rows_source) == (0, 0, 0, N)
    assert rep.rows_transferred <= 2 + 2 * SMALL.first_segments  # checksums only, no rows
    left.db.dispose()


def test_duckdb_injected_differences(tmp_path):
    url = f"duckdb:///{tmp_path}/w.duckdb"
    left, right = _warehouse_pair(url)
    expected = inject(url, "settlement_ods.mart_ecs_order_info", ecs_rows(N))
    _check(compare_sides(ECS, left, right, settings=SMALL), expected)
    left.db.dispose()


def test_postgres_injected_differences(pg_url):
    left, right = _warehouse_pair(pg_url)
    expected = inject(pg_url, "settlement_ods.mart_ecs_order_info", ecs_rows(N))
    _check(compare_sides(ECS, left, right, settings=SMALL), expected)
    left.db.dispose()


def test_mariadb_against_postgres(mysql_url, pg_url):
    rows = ecs_rows(N)
    write_source(mysql_url, rows)
    write_warehouse(pg_url, "settlement_ods", "mart_ecs_order_info", rows)
    src, wh = open_database("source", mysql_url), open_database("warehouse", pg_url)
    left = Side(src, "source", ((None, "ecs_order_info"),))
    right = Side(wh, "warehouse", (("settlement_ods", "mart_ecs_order_info"),))
    clean = compare_sides(ECS, left, right, settings=SMALL)
    assert (clean.missing, clean.extra, clean.changed) == (0, 0, 0)
    expected = inject(pg_url, "settlement_ods.mart_ecs_order_info", rows)
    _check(compare_sides(ECS, left, right, settings=SMALL), expected)
    # a month scope on the archive column counts only rows inside it
    lo, hi = rows[0]["add_time"], rows[100]["add_time"]
    part = compare_sides(ECS, left, right, Scope(column="add_time", lower=lo, upper=hi),
                         settings=SMALL)
    assert part.rows_source == 100
    src.dispose()
    wh.dispose()


def _whole_checksum(url: str, role: str, relation: tuple) -> tuple[int, int, list[str]]:
    db = open_database(role, url)
    with db.engine.connect() as conn:
        r = SideReader(Side(db, role, (relation,)), ECS, Scope(), conn)
        sums = r.checksums([(0, 10**12)], 0, 10**12)
        if db.backend.name == "sqlite":  # read as Arrow and hashed in DuckDB, or in SQLite
            assert r.fast is not None
            r.bounds()
            fine = r.checksums([(0, 10**12)], 0, 16)  # many buckets, through DuckDB
            assert len(fine) > 1
            r.fast = None  # now through SQLite's own SQL and its Python hash
            assert r.checksums([(0, 10**12)], 0, 16) == fine
            assert r.checksums([(0, 10**12)], 0, 10**12) == sums
        texts = sorted("|".join(row[1:]) for row in r.rows([(0, 10**12)]))
    db.dispose()
    (n, s), = sums.values()
    return n, s, texts


def _expected(rows):
    return (len(rows), sum(row_hash(ECS, r) for r in rows), sorted(row_text(ECS, r) for r in rows))


def test_checksum_agrees_sqlite_duckdb(tmp_path):
    rows = ecs_rows(300)
    write_source(f"sqlite:///{tmp_path}/s.sqlite", rows)
    write_warehouse(f"duckdb:///{tmp_path}/w.duckdb", "m", "t", rows)
    want = _expected(rows)
    assert _whole_checksum(f"sqlite:///{tmp_path}/s.sqlite", "source", (None, "ecs_order_info")) == want
    assert _whole_checksum(f"duckdb:///{tmp_path}/w.duckdb", "warehouse", ("m", "t")) == want


def test_checksum_agrees_mariadb_postgres(mysql_url, pg_url):
    rows = ecs_rows(300)
    write_source(mysql_url, rows)
    write_warehouse(pg_url, "m", "t", rows)
    want = _expected(rows)
    assert _whole_checksum(mysql_url, "source", (None, "ecs_order_info")) == want
    assert _whole_checksum(pg_url, "warehouse", ("m", "t")) == want


def test_redshift_statements_parse():
    from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2

    from ot_core.engines import backend_for

    be = backend_for(RedshiftDialect_psycopg2())
    db = type("Db", (), {"backend": be})()
    r = SideReader(Side(db, "rs", (("settlement_ods", "mart_ecs_order_info"),
                                ("settlement_ods", "hist_ecs_order_info_2026_h1"))),
                ECS, Scope(column="add_time", lower=0, upper=10), None)
    stmts = r.render_all()
    assert "STRTOL(" in stmts[1] and "UNION ALL" in stmts[1]
    for s in stmts:
        parse_check(s, "redshift")


_alphabet = st.text(alphabet="a|~pN", max_size=4)


@settings(max_examples=25, deadline=None)
@given(st.tuples(_alphabet, st.one_of(st.none(), _alphabet)),
       st.tuples(_alphabet, st.one_of(st.none(), _alphabet)))
def test_separator_cannot_be_confused(a, b):
    """Two string pairs get the same row text in DuckDB only when they are the same pair."""
    eng = sa.create_engine("duckdb:///:memory:")
    from ot_core.engines import backend_for

    cs = backend_for(eng).checksum()
    cols = [ECS.column("order_sn"), ECS.column("shipping_channel")]
    sql = f"SELECT {cs.row_text(cols)} FROM (SELECT :x AS order_sn, :y AS shipping_channel) t"
    with eng.connect() as c:
        ta = c.execute(sa.text(sql), {"x": a[0], "y": a[1]}).scalar()
        tb = c.execute(sa.text(sql), {"x": b[0], "y": b[1]}).scalar()
    eng.dispose()
    assert (ta == tb) == (a == b)
    assert ta == field_text(cols[0], a[0]) + "|" + field_text(cols[1], a[1])

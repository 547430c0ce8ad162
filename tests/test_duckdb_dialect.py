"""The DuckDB dialect the warehouse is opened with: duckdb-engine's, without the two
throwaway in-memory databases it opens per process, and otherwise the same."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from ot_core.db.connect import connect_with_retries, open_database
from ot_core.engines.duckdb_dialect import OTDuckDBDialect
from ot_core.errors import OTError

PROBE = """
import json, sys
import duckdb_engine
from duckdb_engine.config import get_core_config
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS
from ot_core.db.connect import open_database
db = open_database("warehouse", "duckdb:///" + sys.argv[1])
with db.engine.begin() as conn:
    conn.exec_driver_sql("SELECT 1").scalar()
db.dispose()
print(json.dumps({"dialect": type(db.engine.dialect).__name__,
                  "settings_probed": get_core_config.cache_info().currsize,
                  "postgres_words_changed": "qualify" in RESERVED_WORDS}))
"""


def test_a_warehouse_process_opens_no_throwaway_database(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "w.duckdb")],
                         check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {
        "dialect": "OTDuckDBDialect", "settings_probed": 0, "postgres_words_changed": False}


def test_duckdb_reserved_words_are_quoted_after_the_first_connection(tmp_path):
    """'qualify' and 'pivot' are reserved in DuckDB, not in PostgreSQL: SQLAlchemy must quote
    them in the statements it compiles, as duckdb-engine does."""
    db = open_database("warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        assert isinstance(db.engine.dialect, OTDuckDBDialect)
        meta = sa.MetaData()
        t = sa.Table("pivot", meta, sa.Column("qualify", sa.Integer), sa.Column("x", sa.Integer))
        with db.engine.begin() as conn:
            meta.create_all(conn)
            conn.execute(sa.insert(t), [{"qualify": 1, "x": 2}, {"qualify": 3, "x": 4}])
            got = conn.execute(sa.select(t.c.qualify).where(t.c.x > 2)).scalars().all()
        assert got == [3]
        assert '"pivot"."qualify"' in str(sa.select(t.c.qualify).compile(dialect=db.engine.dialect))
    finally:
        db.dispose()


def test_url_options_reach_duckdb_and_a_bad_one_is_named(tmp_path):
    path = tmp_path / "w.duckdb"
    db = open_database("warehouse", f"duckdb:///{path}?memory_limit=300MB&threads=1")
    try:
        with db.engine.begin() as conn:
            got = conn.exec_driver_sql("SELECT current_setting('threads'), "
                                       "current_setting('memory_limit')").one()
        assert got[0] == 1 and got[1].endswith("MiB") and float(got[1].split()[0]) < 301
    finally:
        db.dispose()
    bad = open_database("warehouse", f"duckdb:///{path}?no_such_setting=1")
    try:
        with pytest.raises(OTError, match="no_such_setting"):
            connect_with_retries(bad, retries=0, backoff=0).close()
    finally:
        bad.dispose()


def test_a_plain_duckdb_engine_and_the_warehouse_share_a_file_in_one_process(tmp_path):
    """A notebook may hold duckdb-engine's own engine and the warehouse's on one file: DuckDB
    admits both only when their configurations agree."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    plain = sa.create_engine(url)
    db = open_database("warehouse", url)
    try:
        with plain.connect() as a, db.engine.connect() as b:
            a.exec_driver_sql("CREATE TABLE t AS SELECT 7 AS v")
            a.commit()
            assert b.exec_driver_sql("SELECT v FROM t").scalar() == 7
    finally:
        db.dispose()
        plain.dispose()


def test_duckdb_only_reserved_words_are_quoted_before_any_connection():
    """What is compiled before the first connection (a notebook's own statements) quotes
    DuckDB's reserved words too, and keeps doing so after the connection adds its list."""
    dialect = OTDuckDBDialect()
    t = sa.table("pivot", sa.column("qualify"), sa.column("lambda"))
    assert str(sa.select(t).compile(dialect=dialect)).split("\n")[0] == (
        'SELECT "pivot"."qualify", "pivot"."lambda" ')
    import duckdb
    from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

    from ot_core.engines.duckdb_dialect import _KEYWORDS_SQL, DUCKDB_ONLY_RESERVED

    with duckdb.connect() as con:
        duck = {w for (w,) in con.execute(_KEYWORDS_SQL).fetchall()}
    assert duck - RESERVED_WORDS <= DUCKDB_ONLY_RESERVED  # the static list is complete

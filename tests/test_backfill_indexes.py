"""PostgreSQL backfill: an empty mart taking a large batch gets its indexes built once after
the insert. The tables must end with exactly the indexes and constraints they started with,
the rows must be the source's, a mart that already holds rows keeps its indexes throughout
(also when the batch replaces every row), and a fill that fails, in the insert or in the
rebuild, leaves the indexes in place (the drop rolls back with it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from support.db import dml_role, run_sql, scalar

from ot_core.engines import backend_for
from ot_core.engines import postgres as pg
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate

pytestmark = pytest.mark.servers

INDEXES = ("SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
           "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
           "JOIN pg_namespace n ON n.oid = t.relnamespace "
           "WHERE n.nspname = 'settlement_ods' AND t.relname LIKE 'mart_%' ORDER BY 1")
SCHEMAS = ("settlement_public", "settlement_ods", "settlement_ctl")
ROWS = "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM {}"
# a rebuilt primary key must be the constraint again, not just a unique index
CONSTRAINTS = ("SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) "
               "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
               "JOIN pg_namespace n ON n.oid = t.relnamespace "
               "WHERE n.nspname = 'settlement_ods' AND t.relname LIKE 'mart_%' ORDER BY 1, 2")


def test_backfill_builds_mart_indexes_after_the_insert(servers, monkeypatch):
    simulate("2026-03-01", start="2026-02-20", orders_per_day=60, seed=5, source=servers.source_url)
    # an empty warehouse: the schema alone, so the indexes a mart is created with are known
    run_cycle("2026-02-01T00:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)
    created = run_sql(servers.warehouse_url, INDEXES)
    constraints = run_sql(servers.warehouse_url, CONSTRAINTS)
    assert [(t, k) for t, _, k, _ in constraints] == [
        (f"mart_{t}", "p") for t in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath")]
    assert {name for name, _ in created} >= {
        "pk_mart_uni_tracking_spath", "ix_mart_uni_tracking_spath_archive",
        "ix_mart_uni_tracking_spath_batch"}
    assert scalar(servers.warehouse_url, "SELECT COUNT(*) FROM settlement_ods.mart_ecs_order_info") == 0

    dropped: list[str] = []
    real = pg.PostgresBackend.filling

    def watched(self, conn, target, rows):
        with real(self, conn, target, rows):
            left = len(conn.execute(sa.text(INDEXES)).fetchall())
            dropped.append(f"{target}: {left} indexes left")
            yield

    monkeypatch.setattr(pg, "KEY_LOOKUP_MAX_ROWS", 10)  # the demo's batches count as a backfill
    monkeypatch.setattr(pg.PostgresBackend, "filling", pg.contextmanager(watched))
    run_cycle("2026-02-28T12:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)

    # while each empty mart was filled its indexes were gone (the other marts' stayed)
    assert len(dropped) == 3 and all(d.endswith(": 6 indexes left") for d in dropped), dropped
    # ...and afterwards every mart has exactly the indexes it was created with
    assert run_sql(servers.warehouse_url, INDEXES) == created
    assert run_sql(servers.warehouse_url, CONSTRAINTS) == constraints

    # a mart that holds rows keeps its indexes while the next batch goes in
    dropped.clear()
    run_cycle("2026-03-01T00:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)
    assert dropped and all(d.endswith(": 9 indexes left") for d in dropped), dropped
    assert run_sql(servers.warehouse_url, INDEXES) == created
    # ...even when the batch replaces every row (the delete empties the mart for the
    # merge's transaction alone: readers still see the rows and must not wait on a lock)
    every = run_sql(servers.source_url, "UPDATE uni_tracking_info SET update_time = :t",
                    {"t": int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp())})
    dropped.clear()
    res = run_cycle("2026-03-02T00:00:00Z", source=servers.source_url,
                    warehouse=servers.warehouse_url)
    assert res.tables["uni_tracking_info"].rows_merged == every > 10
    assert dropped and all(d.endswith(": 9 indexes left") for d in dropped), dropped
    assert run_sql(servers.warehouse_url, CONSTRAINTS) == constraints
    # ...and the rows are the source's
    src = run_sql(servers.source_url, ROWS.format("uni_tracking_spath"))
    assert src == run_sql(servers.warehouse_url, ROWS.format("settlement_ods.mart_uni_tracking_spath"))
    assert src[0][0] > 10


@pytest.mark.parametrize("fails_in", ["insert", "rebuild"])
def test_a_failed_fill_keeps_the_indexes(pg_url, fails_in):
    eng = sa.create_engine(pg_url)
    try:
        with eng.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL)")
            conn.exec_driver_sql("CREATE INDEX ix_t_v ON t (v)")
        backend = backend_for(eng, "warehouse")
        before = run_sql(pg_url, "SELECT indexname, indexdef FROM pg_indexes "
                                 "WHERE tablename = 't' ORDER BY 1")
        with pytest.raises(sa.exc.IntegrityError), eng.begin() as conn:
            with backend.filling(conn, '"t"', pg.KEY_LOOKUP_MAX_ROWS + 1):
                assert conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 't'").scalar() == 0
                conn.exec_driver_sql("INSERT INTO t SELECT g, g FROM generate_series(1, 5) g")
                if fails_in == "insert":
                    conn.exec_driver_sql("INSERT INTO t VALUES (6, NULL)")  # v is NOT NULL
                else:  # a duplicate key: the primary key cannot be built again
                    conn.exec_driver_sql("INSERT INTO t VALUES (1, 1)")
        assert run_sql(pg_url, "SELECT indexname, indexdef FROM pg_indexes "
                               "WHERE tablename = 't' ORDER BY 1") == before
        assert scalar(pg_url, "SELECT COUNT(*) FROM t") == 0
    finally:
        eng.dispose()


def test_a_user_that_does_not_own_the_mart_backfills_with_its_indexes(servers, monkeypatch):
    """A pipeline role granted reads and writes only may not drop the owner's indexes."""
    simulate("2026-03-01", start="2026-02-20", orders_per_day=60, seed=5, source=servers.source_url)
    run_cycle("2026-02-01T00:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)
    created = run_sql(servers.warehouse_url, INDEXES)
    with dml_role(servers.warehouse_url, SCHEMAS) as as_role:
        monkeypatch.setattr(pg, "KEY_LOOKUP_MAX_ROWS", 10)
        res = run_cycle("2026-03-01T00:00:00Z", source=servers.source_url, warehouse=as_role)
        assert res.tables["uni_tracking_spath"].rows_merged > 10
        assert run_sql(servers.warehouse_url, INDEXES) == created
        src = run_sql(servers.source_url, ROWS.format("uni_tracking_spath"))
        assert src == run_sql(servers.warehouse_url,
                              ROWS.format("settlement_ods.mart_uni_tracking_spath"))


ANALYZED = ("SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE schemaname = 'settlement_ods' AND relname LIKE 'mart_%' ORDER BY 1")
CROSSING = ('EXPLAIN SELECT COUNT(*) FROM settlement_ods.mart_uni_tracking_spath '
            'WHERE "pathTime" < :cutoff')


@pytest.mark.parametrize(("owner", "large"), [(True, True), (False, True), (True, False)])
def test_a_backfilled_mart_has_statistics(servers, monkeypatch, owner, large):
    """A bulk-loaded mart is analyzed in the backfill's transaction: without statistics (on
    a server whose autovacuum is off, or before it gets there) the lifecycle's probe of the
    rows past the cutoff is planned as a sequential scan of the whole mart in every cycle.
    The same holds for a role that does not own the marts (which keeps the indexes), and
    for a backfill small enough to be merged by key lookups (``large`` False)."""
    simulate("2026-03-01", start="2026-02-20", orders_per_day=60, seed=5, source=servers.source_url)
    run_cycle("2026-02-01T00:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)
    assert [a for _, a in run_sql(servers.warehouse_url, ANALYZED)] == [False] * 3
    if large:
        monkeypatch.setattr(pg, "KEY_LOOKUP_MAX_ROWS", 10)  # the batches count as a backfill
    if owner:
        run_cycle("2026-03-01T00:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)
    else:
        with dml_role(servers.warehouse_url, SCHEMAS) as as_role:
            run_cycle("2026-03-01T00:00:00Z", source=servers.source_url, warehouse=as_role)
    analyzed = run_sql(servers.warehouse_url, ANALYZED)
    if owner:
        assert [a for _, a in analyzed] == [True] * 3, analyzed
        plan = "\n".join(r[0] for r in run_sql(servers.warehouse_url, CROSSING,
                                                {"cutoff": 1_700_000_000}))
        assert "Seq Scan" not in plan, plan
    else:  # ANALYZE is the owner's: the role's backfill still commits (a warning only)
        assert scalar(servers.warehouse_url,
                      "SELECT COUNT(*) FROM settlement_ods.mart_uni_tracking_spath") > 10


RAW_ANALYZED = ("SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = 'settlement_public' AND relname LIKE '%_raw' ORDER BY 1")


def test_a_raw_table_that_took_a_backfill_is_trimmed_by_its_index(servers, monkeypatch):
    """The backfill's batch lands in the raw tables in bulk; their statistics are refreshed
    in the same transaction, so the trim of every later cycle
    (``_batch_id < :first_kept_batch``) is planned on the batch index, not as a
    sequential scan of the whole backfill."""
    simulate("2026-03-01", start="2026-02-20", orders_per_day=60, seed=5, source=servers.source_url)
    monkeypatch.setattr(pg, "KEY_LOOKUP_MAX_ROWS", 10)  # the batches count as a backfill
    run_cycle("2026-03-01T00:00:00Z", source=servers.source_url, warehouse=servers.warehouse_url)
    assert [a for _, a in run_sql(servers.warehouse_url, RAW_ANALYZED)] == [True] * 3
    plan = "\n".join(r[0] for r in run_sql(
        servers.warehouse_url,
        "EXPLAIN DELETE FROM settlement_public.uni_tracking_spath_raw WHERE _batch_id < 1"))
    assert "Seq Scan" not in plan, plan

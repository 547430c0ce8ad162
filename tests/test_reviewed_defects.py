"""One regression test per lifecycle defect of the legacy pipeline (docs/legacy-defects.md,
sections 6-9): each builds the situation that broke the legacy pipeline and shows it cannot
happen here."""

from __future__ import annotations

import re

import sqlalchemy as sa
from support.lifecycle import Source, T, config, conserved, wh_rows, wh_scalar

from ot_core.db.catalog import history_tables
from ot_core.db.connect import open_database
from ot_core.db.schema import ensure
from ot_core.db.sql import SQL_DIR
from ot_core.pipeline.cycle import run_cycle
from ot_core.pipeline.periods import Period, ensure_periods, period_of

ODS = "settlement_ods"


def _cycle(pair, at: str, cfg):
    res = run_cycle(at, config=cfg, source=pair.source_url, warehouse=pair.warehouse_url)
    rep = conserved(pair.source_url, pair.warehouse_url, cfg, T(at))
    assert rep.ok, rep.violations[:5]
    return res


def test_defect_6_archive_guard_uses_true_key(embedded):
    """Legacy: once one event of an order was archived, a NOT IN (order_id) guard blocked all
    its later events forever. Here each event is archived on its own id, including two events
    of one order at the same pathTime (where an (order_id, pathTime) guard would drop one)."""
    src, cfg = Source(embedded.source_url), config()
    src.order(1, T("2026-01-01"))
    src.state(1, T("2026-02-10"), 40)
    src.event(1, T("2026-01-03"), T("2026-01-03T00:05:00"))
    src.event(1, T("2026-02-10"), T("2026-02-10T00:05:00"), "OUTDLV")
    src.event(1, T("2026-02-10"), T("2026-02-10T00:06:00"), "DLV")  # same pathTime
    _cycle(embedded, "2026-02-15", cfg)
    first = _cycle(embedded, "2026-07-05", cfg)  # cutoff Jan 5: only the first event
    assert first.lifecycle["tables"]["uni_tracking_spath"]["archived"] == 1
    second = _cycle(embedded, "2026-08-20", cfg)  # cutoff Feb 20: the other two, same order
    assert second.lifecycle["tables"]["uni_tracking_spath"]["archived"] == 2
    url = embedded.warehouse_url
    assert wh_scalar(url, f"SELECT COUNT(*) FROM {ODS}.mart_uni_tracking_spath") == 0
    assert wh_scalar(url, f"SELECT COUNT(*) FROM {ODS}.hist_uni_tracking_spath_2026_h1") == 3
    assert wh_scalar(url, f"SELECT COUNT(*) FROM {ODS}.order_tracking_exceptions") == 0


def test_defect_7_ecs_safety_check_before_trim(embedded):
    """Legacy: ECS went archive → trim with no safety check, so an order whose period had no
    history table was silently deleted. Here it stays in the mart under one open exception,
    and is archived (exception resolved) once its period table exists."""
    src, off, on = Source(embedded.source_url), config(False), config(True)
    src.order(3, T("2026-01-10"))  # an order that never got a tracking state: inactive
    _cycle(embedded, "2026-02-01", off)
    res = _cycle(embedded, "2026-08-01", off)
    assert res.lifecycle["tables"]["ecs_order_info"]["exceptions"] == 1
    _cycle(embedded, "2026-08-02", off)  # still one open exception for the key, not two
    url = embedded.warehouse_url
    open_rows = wh_rows(url, f"SELECT order_id, source_table, row_key, exception_type FROM "
                             f"{ODS}.order_tracking_exceptions WHERE resolved_at IS NULL")
    assert open_rows == [(3, "ecs_order_info", 3, "ARCHIVE_ROUTING_GAP")]
    assert wh_scalar(url, f"SELECT COUNT(*) FROM {ODS}.mart_ecs_order_info") == 1
    res = _cycle(embedded, "2026-08-03", on)  # rotation on: table created, row archived
    assert res.lifecycle["tables"]["ecs_order_info"]["trimmed"] == 1
    assert res.lifecycle["exceptions_resolved"] == 1
    assert wh_scalar(url, f"SELECT COUNT(*) FROM {ODS}.mart_ecs_order_info") == 0
    assert wh_scalar(url, f"SELECT order_id FROM {ODS}.hist_ecs_order_info_2026_h1") == 3


def test_defect_8_periods_computed_and_created_ahead(embedded):
    """Legacy: the 2026_h1 period was never defined and its tables never created. Here
    periods are computed from dates, and rotation creates them 45 days ahead."""
    assert period_of(T("2026-07-01T00:00:00Z")) == Period(2026, 2)
    assert period_of(T("2026-07-01T00:00:00Z") - 1) == Period(2026, 1)
    assert period_of(T("2027-01-01")) == Period(2027, 1)
    assert (Period(2026, 1).start, Period(2026, 1).end) == (T("2026-01-01"), T("2026-07-01"))
    cfg = config()
    wh = open_database("warehouse", embedded.warehouse_url)
    with wh.engine.connect() as conn:
        with conn.begin():
            ensure(conn, cfg, wh.backend)
        may = ensure_periods(conn, cfg, wh.backend, T("2026-05-01"))
        # cutoff 2025-11-01 (2025_h2) up to May 1 + 45 days (2026_h1): no 2026_h2 yet
        assert sorted(n.split(".")[1] for n in may.created) == sorted(
            f"hist_{t}_{p}" for t in cfg.tables for p in ("2025_h2", "2026_h1"))
        june = ensure_periods(conn, cfg, wh.backend, T("2026-06-20"))  # + 45 days = Aug 4
        assert sorted(n.split(".")[1] for n in june.created) == sorted(
            f"hist_{t}_2026_h2" for t in cfg.tables)
        assert ensure_periods(conn, cfg, wh.backend, T("2026-06-20")).created == []
        with conn.begin():
            found = [h.period for h in history_tables(conn, cfg, wh.backend, "uni_tracking_spath")]
        assert found == ["2025_h2", "2026_h1", "2026_h2"]
        with conn.begin():
            cols = wh.backend.list_columns(conn, ODS, "hist_uni_tracking_spath_2026_h2")
            mart_cols = wh.backend.list_columns(conn, ODS, "mart_uni_tracking_spath")
        assert cols == mart_cols and "_raw_id" in cols and "_batch_id" in cols
    wh.dispose()


def test_defect_9_null_key_never_blocks_trim(embedded):
    """Legacy: trim used NOT IN (SELECT order_id FROM exceptions); one NULL order_id made it
    delete nothing, forever. Here no template uses NOT IN, and an open exception with NULL
    keys neither stops a trim nor stops new exceptions from being recorded."""
    offenders = [p.name for p in SQL_DIR.rglob("*.sql")
                 if re.search(r"\bNOT\s+IN\s*\(", p.read_text(), re.IGNORECASE)]
    assert offenders == []
    src, cfg = Source(embedded.source_url), config()
    for o in (10, 11):
        src.order(o, T("2026-01-10"))
        src.state(o, T("2026-01-11"), 40)
        src.event(o, T("2026-01-11"), T("2026-01-11T00:01:00"))
    _cycle(embedded, "2026-02-01", cfg)
    eng = sa.create_engine(embedded.warehouse_url)
    with eng.begin() as c:
        c.execute(sa.text(
            f"INSERT INTO {ODS}.order_tracking_exceptions (exception_id, order_id, source_table, "
            "row_key, exception_type, detected_at, notes) VALUES (1, NULL, 'uni_tracking_info', "
            "NULL, 'ARCHIVE_ROUTING_GAP', TIMESTAMP '2026-02-01 00:00:00', 'no key')"))
    eng.dispose()
    src.order(13, T("2026-02-02"))
    src.state(13, T("2026-02-02"), 40)
    # a late event of a period (2025_h1) that has no history table and rotation is off
    src.event(13, T("2025-03-01"), T("2026-07-30"))
    res = _cycle(embedded, "2026-08-01", config(False))
    assert res.lifecycle["rows_trimmed"] == 6  # orders 10 and 11: ecs, uti, spath each
    assert res.lifecycle["tables"]["uni_tracking_spath"]["exceptions"] == 1  # the late event
    url = embedded.warehouse_url
    assert wh_scalar(url, f"SELECT COUNT(*) FROM {ODS}.mart_uni_tracking_info") == 1
    assert wh_scalar(url, f"SELECT COUNT(*) FROM {ODS}.order_tracking_exceptions "
                          "WHERE resolved_at IS NULL AND row_key IS NULL") == 1

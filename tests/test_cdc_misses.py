"""Rows timestamp CDC can miss are seen, and what compare finds is repaired — on both pairs.

Each class is made at the source (or, for the classes the cycle now handles itself, also in a
warehouse written wrong), then: the cycle's own handling, ``ot compare`` with its one exit
code, ``ot repair`` restoring equality, and an independent key-by-key check of the source
against mart + history.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from support.db import run_sql as _exec

from ot_core.cli import main
from ot_core.config import load_config
from ot_core.contract import CONTRACTS
from ot_core.db.connect import open_database
from ot_core.db.warehouse import Warehouse
from ot_core.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_TRANSIENT
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate
from ot_core.timeutil import from_epoch, parse_as_of, to_epoch

AT = to_epoch(parse_as_of("2026-03-03T00:00:00Z"))
MART = "settlement_ods"


# -- helpers ----------------------------------------------------------------------------------
def _norm(v):
    if v is None:
        return None
    if isinstance(v, (Decimal, float)):
        return Decimal(str(v)).quantize(Decimal("0.01"))
    return v.rstrip() if isinstance(v, str) else int(v)


def source_rows(url: str, table: str) -> dict[int, tuple]:
    c = CONTRACTS[table]
    cols = ", ".join(f'"{n}"' if n == "pathTime" else n for n in c.column_names)
    if url.startswith("mysql"):
        cols = ", ".join(c.column_names)
    key = c.column_names.index(c.key[0])
    return {int(r[key]): tuple(_norm(v) for v in r)
            for r in _exec(url, f"SELECT {cols} FROM {table}")}


def warehouse_rows(url: str, table: str) -> dict[int, list[tuple]]:
    """Every row of mart + history by key (a key held twice shows as two entries)."""
    c = CONTRACTS[table]
    cols = ", ".join(f'"{n}"' for n in c.column_names)
    hists = [r[0] for r in _exec(url, "SELECT table_name FROM information_schema.tables WHERE "
                                 "table_schema = :s AND table_name LIKE :p",
                                 {"s": MART, "p": f"hist_{table}_%"})]
    key = c.column_names.index(c.key[0])
    out: dict[int, list[tuple]] = {}
    for rel in [f"mart_{table}", *hists]:
        for r in _exec(url, f'SELECT {cols} FROM {MART}."{rel}"'):
            out.setdefault(int(r[key]), []).append(tuple(_norm(v) for v in r))
    return out


def assert_equal_key_by_key(pair, table: str) -> None:
    """Independent of ``ot compare``: the source's rows, read whole, against mart + history."""
    src, wh = source_rows(pair.source_url, table), warehouse_rows(pair.warehouse_url, table)
    assert set(src) == set(wh), (sorted(set(src) - set(wh))[:5], sorted(set(wh) - set(src))[:5])
    twice = [k for k, v in wh.items() if len(v) > 1]
    assert not twice, twice[:5]
    differ = [k for k in src if src[k] != wh[k][0]]
    assert not differ, [(k, src[k], wh[k][0]) for k in differ[:3]]


def ot(pair, *args: str):
    res = CliRunner().invoke(main, list(args), env=pair.env())
    return res


def compare(pair, table: str) -> tuple[int, dict]:
    res = ot(pair, "compare", "--table", table, "--json")
    return res.exit_code, json.loads(res.stdout)


def make_nullable(pair, table: str, column: str) -> None:
    """The source's CDC column drifts to nullable (the contract says NOT NULL)."""
    if pair.source_url.startswith("mysql"):
        _exec(pair.source_url, f"ALTER TABLE {table} MODIFY {column} INT UNSIGNED NULL")
        return
    src = open_database("source", pair.source_url)
    md = sa.MetaData()
    t = src.backend.source_table(CONTRACTS[table].with_nullable(column), md)
    with src.engine.begin() as c:
        c.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {table}_old")
        for ix in t.indexes:
            c.exec_driver_sql(f"DROP INDEX IF EXISTS {ix.name}")
        md.create_all(c)
        c.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {table}_old")
        c.exec_driver_sql(f"DROP TABLE {table}_old")
    src.dispose()


@pytest.fixture
def built(pair):
    """Three days simulated, a backfill at AT and a steady cycle 15 minutes later."""
    simulate(from_epoch(AT), start="2026-02-28", orders_per_day=60, seed=11,
             source=pair.source_url)
    run_cycle(from_epoch(AT - 900), source=pair.source_url, warehouse=pair.warehouse_url)
    run_cycle(from_epoch(AT), source=pair.source_url, warehouse=pair.warehouse_url)
    return pair


def cycle(pair, at: int):
    res = ot(pair, "cycle", "--as-of", from_epoch(at).isoformat().replace("+00:00", "Z"))
    assert res.exit_code == EXIT_OK, res.output
    return res


# -- the classes ------------------------------------------------------------------------------
def test_null_cdc_rows_are_read_and_carried(built):
    pair = built
    make_nullable(pair, "uni_tracking_info", "update_time")
    oid = _exec(pair.source_url, "SELECT MIN(order_id) FROM uni_tracking_info")[0][0]
    _exec(pair.source_url, "UPDATE uni_tracking_info SET update_time = NULL, status = 40, "
          "latest_event = 'Delivered, stamp lost' WHERE order_id = :k", {"k": oid})
    cycle(pair, AT + 900)
    held = _exec(pair.warehouse_url, f"SELECT status, update_time FROM {MART}."
                 "mart_uni_tracking_info WHERE order_id = :k", {"k": oid})
    assert held == [(40, None)]
    assert compare(pair, "uti")[0] == EXIT_OK
    assert_equal_key_by_key(pair, "uni_tracking_info")
    # read again by every cycle, landed only when it changes
    again = json.loads(ot(pair, "cycle", "--as-of", from_epoch(AT + 1800).isoformat()
                          .replace("+00:00", "Z"), "--json").stdout)
    assert again["tables"]["uni_tracking_info"]["rows_loaded"] == 0
    _exec(pair.source_url, "UPDATE uni_tracking_info SET status = 50 WHERE order_id = :k",
          {"k": oid})
    cycle(pair, AT + 2700)
    assert_equal_key_by_key(pair, "uni_tracking_info")
    # a warehouse that had missed it (written by an older version): pending, then repaired
    _exec(pair.warehouse_url, f"DELETE FROM {MART}.mart_uni_tracking_info WHERE order_id = :k",
          {"k": oid})
    code, doc = compare(pair, "uti")
    assert code == EXIT_OK and doc["pending"] == 1 and doc["missing"] == 0
    assert ot(pair, "repair", "--table", "uti").exit_code == EXIT_OK
    assert_equal_key_by_key(pair, "uni_tracking_info")


def test_an_update_stamped_before_the_merged_version_wins_when_read_last(built):
    pair = built
    oid = _exec(pair.source_url, "SELECT MAX(order_id) FROM uni_tracking_info")[0][0]
    q = "UPDATE uni_tracking_info SET status = :s, update_time = :t WHERE order_id = :k"
    _exec(pair.source_url, q, {"s": 10, "t": AT + 870, "k": oid})  # 'picked up'
    cycle(pair, AT + 900)
    # a server whose clock is 60 s behind records the delivery, inside the next lookback
    _exec(pair.source_url, q, {"s": 40, "t": AT + 810, "k": oid})
    cycle(pair, AT + 1800)
    assert _exec(pair.warehouse_url, f"SELECT status FROM {MART}.mart_uni_tracking_info "
                 "WHERE order_id = :k", {"k": oid}) == [(40,)]
    assert_equal_key_by_key(pair, "uni_tracking_info")
    # written wrong by an older version (highest update_time won): known wrong, repaired
    _exec(pair.warehouse_url, f"UPDATE {MART}.mart_uni_tracking_info SET status = 10, "
          "update_time = :t WHERE order_id = :k", {"t": AT + 870, "k": oid})
    code, doc = compare(pair, "uti")
    assert code == EXIT_CHECK_FAILED and doc["changed"] == 1, doc
    res = ot(pair, "repair", "--table", "uti", "--from-compare", doc["run_id"])
    assert res.exit_code == EXIT_OK and "repaired 1 key(s)" in res.output, res.output
    assert compare(pair, "uti")[0] == EXIT_OK
    assert_equal_key_by_key(pair, "uni_tracking_info")


def test_a_commit_later_than_the_lookback_is_found_and_repaired(built):
    pair = built
    late = _exec(pair.source_url, "SELECT MAX(id) FROM uni_tracking_spath")[0][0] + 1
    oid = _exec(pair.source_url, "SELECT MIN(order_id) FROM uni_tracking_spath")[0][0]
    _exec(pair.source_url, 'INSERT INTO uni_tracking_spath (id, order_id, "pathTime", path_code, '
          "path_info, path_location, add_time) VALUES (:i, :o, :p, 'ARR', 'late', 'X', :a)"
          .replace('"pathTime"', "pathTime" if pair.source_url.startswith("mysql")
                   else '"pathTime"'),
          {"i": late, "o": oid, "p": AT - 7200, "a": AT - 3600})  # an hour behind the watermark
    cycle(pair, AT + 900)
    code, doc = compare(pair, "uts")
    assert code == EXIT_CHECK_FAILED and doc["missing"] == 1 and doc["sample_keys"]["missing"] == [late]
    dry = ot(pair, "repair", "--table", "uts", "--from-compare", doc["run_id"], "--dry-run")
    assert dry.exit_code == EXIT_OK and "would be re-read" in dry.output
    assert compare(pair, "uts")[0] == EXIT_CHECK_FAILED  # a dry run changed nothing
    res = ot(pair, "repair", "--table", "uts", "--from-compare", doc["run_id"], "--json")
    assert res.exit_code == EXIT_OK, res.output
    out = json.loads(res.stdout)
    assert out["reread"] == 1 and out["still_different"] == 0 and out["batch_id"]
    assert _exec(pair.warehouse_url, "SELECT strategy, status FROM settlement_ctl.ot_batches "
                 "WHERE batch_id = :b", {"b": out["batch_id"]}) == [("repair", "merged")]
    assert compare(pair, "uts")[0] == EXIT_OK
    assert_equal_key_by_key(pair, "uni_tracking_spath")
    # idempotent; and the next cycle reads on as usual
    assert "nothing to repair" in ot(pair, "repair", "--table", "uts").output
    cycle(pair, AT + 1800)
    assert_equal_key_by_key(pair, "uni_tracking_spath")


def test_an_order_changed_after_creation_and_one_deleted_are_repaired(built):
    pair = built
    keys = [r[0] for r in _exec(pair.source_url,
                                "SELECT order_id FROM ecs_order_info ORDER BY order_id LIMIT 2")]
    _exec(pair.source_url, "UPDATE ecs_order_info SET declared_value = 99.99, store_id = NULL "
          "WHERE order_id = :k", {"k": keys[0]})
    _exec(pair.source_url, "DELETE FROM ecs_order_info WHERE order_id = :k", {"k": keys[1]})
    code, doc = compare(pair, "ecs")
    assert code == EXIT_CHECK_FAILED and (doc["changed"], doc["extra"]) == (1, 1), doc
    res = ot(pair, "repair", "--table", "ecs", "--json")
    out = json.loads(res.stdout)
    assert res.exit_code == EXIT_OK and (out["reread"], out["deleted"]) == (1, 1), res.output
    assert _exec(pair.warehouse_url, "SELECT rows_deleted FROM settlement_ctl.ot_batches "
                 "WHERE batch_id = :b", {"b": out["batch_id"]}) == [(1,)]
    assert compare(pair, "ecs")[0] == EXIT_OK
    assert_equal_key_by_key(pair, "ecs_order_info")


def test_repair_and_refresh_wait_for_no_one_but_share_the_cycle_lock(built):
    pair = built
    _exec(pair.source_url, "UPDATE ecs_order_info SET currency = 'EUR' WHERE order_id = "
          "(SELECT MIN(order_id) FROM ecs_order_info)" if pair.source_url.startswith("sqlite")
          else "UPDATE ecs_order_info SET currency = 'EUR' ORDER BY order_id LIMIT 1")
    wh = Warehouse.open(load_config(), pair.warehouse_url)
    try:
        with wh.hold("cycle", 60, "a test holding the cycle"):
            for args in (["repair", "--table", "ecs"], ["refresh-ecs"]):
                res = ot(pair, *args)
                assert res.exit_code == EXIT_TRANSIENT, res.output
                assert "already running" in res.stderr and "a test holding the cycle" in res.stderr
    finally:
        wh.close()
    assert compare(pair, "ecs")[0] == EXIT_CHECK_FAILED  # nothing was written meanwhile
    assert ot(pair, "refresh-ecs").exit_code == EXIT_OK
    assert_equal_key_by_key(pair, "ecs_order_info")


def test_keys_at_both_ends_of_bigint_compare_and_repair(pair):
    lo, hi = -(2**63), 2**63 - 1
    simulate(from_epoch(AT), start="2026-03-01", orders_per_day=20, seed=3,
             source=pair.source_url)
    row = ("SN", 7, 70, "STD", "US", 100, "1.00", "USD", AT - 5000)
    for k in (lo, hi):
        _exec(pair.source_url, "INSERT INTO ecs_order_info (order_id, order_sn, partner_id, "
              "store_id, shipping_channel, consignee_country, weight_grams, declared_value, "
              "currency, add_time) VALUES (:k, :a, :b, :c, :d, :e, :f, :g, :h, :i)",
              dict(zip("kabcdefghi", (k, *row), strict=True)))
    run_cycle(from_epoch(AT), source=pair.source_url, warehouse=pair.warehouse_url)
    code, doc = compare(pair, "ecs")
    assert code == EXIT_OK, doc
    _exec(pair.source_url, "UPDATE ecs_order_info SET weight_grams = 5 WHERE order_id IN (:a, :b)",
          {"a": lo, "b": hi})
    code, doc = compare(pair, "ecs")
    assert code == EXIT_CHECK_FAILED and doc["sample_keys"]["changed"] == [lo, hi], doc
    res = ot(pair, "repair", "--table", "ecs", "--from-compare", doc["run_id"])
    assert res.exit_code == 0, res.output
    assert_equal_key_by_key(pair, "ecs_order_info")
    res = ot(pair, "compare", "--table", "ecs", "--key-range", f"{lo}:{hi + 1}")
    assert res.exit_code == EXIT_OK, res.output


def test_a_nul_character_is_stripped_with_a_warning_naming_the_row(built, caplog):
    pair = built
    oid = _exec(pair.source_url, "SELECT MIN(order_id) FROM uni_tracking_info")[0][0]
    _exec(pair.source_url, "UPDATE uni_tracking_info SET latest_event = :e, update_time = :t "
          "WHERE order_id = :k", {"e": "Arrived\x00 at hub", "t": AT + 100, "k": oid})
    with caplog.at_level("WARNING", logger="ot.cycle"):
        run_cycle(from_epoch(AT + 900), source=pair.source_url, warehouse=pair.warehouse_url)
    held = _exec(pair.warehouse_url, f"SELECT latest_event FROM {MART}.mart_uni_tracking_info "
                 "WHERE order_id = :k", {"k": oid})[0][0]
    if pair.kind == "servers":  # PostgreSQL cannot hold it: stripped, and said so
        assert held == "Arrived at hub"
        warned = [r.getMessage() for r in caplog.records if "NUL" in r.getMessage()]
        assert len(warned) == 1 and "uni_tracking_info.latest_event" in warned[0]
        assert f"order_id [{oid}]" in warned[0]
    else:  # DuckDB holds it as read
        assert held == "Arrived\x00 at hub"
    assert compare(pair, "uti")[0] == EXIT_OK  # NUL is not data to the comparison


def test_a_huge_bad_value_is_named_in_one_short_line(embedded):
    simulate(from_epoch(AT), start="2026-03-01", orders_per_day=20, seed=3,
             source=embedded.source_url)
    oid = _exec(embedded.source_url, "SELECT MIN(order_id) FROM uni_tracking_info")[0][0]
    _exec(embedded.source_url, "UPDATE uni_tracking_info SET latest_event = :e WHERE order_id = :k",
          {"e": "x" * 2_000_000, "k": oid})
    res = ot(embedded, "cycle", "--as-of", from_epoch(AT).isoformat().replace("+00:00", "Z"))
    assert res.exit_code == 3, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and len(err) < 600, err[:700]
    assert "'uni_tracking_info'" in err and "'latest_event'" in err and f"order_id {oid}" in err
    assert "(2,000,000 characters)" in err

"""Checksums at the edges of the canonical text, on every engine: NULL against the empty
string and the separator, negative integers and decimals, the NUL character (stripped where
the warehouse cannot hold it); and a server side's first-level scan split over connections
giving the very checksums one connection gives."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from support.compare_data import write_source, write_warehouse

from ot_core.contract import ECS
from ot_core.db.connect import open_database
from ot_core.quality.checksum import row_hash, row_text
from ot_core.quality.compare import Scope, Settings, Side, SideReader, compare_sides
from ot_core.quality.compare.sides import SPLIT_MIN_KEYS, split_span

STRINGS = ["", None, "|", "~", "~N", "~p", "a|~b", "é|ü", "||", "~~"]
INTS = [0, -1, -2147483648, 2147483647, 7]
DECIMALS = [Decimal("-0.01"), Decimal("-12.35"), Decimal("0.00"), None,
            Decimal("9999999999.99"), Decimal("-9999999999.99")]


def edge_rows(n: int = 240, nul: bool = True) -> list[dict]:
    """Keys spread over ~12M values (wider than SPLIT_MIN_KEYS: the scan is split)."""
    rows = []
    for i in range(n):
        sn = f"sn\x00{i}" if nul and i % 9 == 0 else f"sn{i}"
        rows.append({
            "order_id": 1000 + i * 50_021,
            "order_sn": sn,
            "partner_id": INTS[i % len(INTS)],
            "store_id": [None, -42, 0][i % 3],
            "shipping_channel": STRINGS[i % len(STRINGS)],
            "consignee_country": ["US", None][i % 2],
            "weight_grams": [None, -1, 5][i % 3],
            "declared_value": DECIMALS[i % len(DECIMALS)],
            "currency": "EUR",
            "add_time": 1_780_000_000 + i,
        })
    return rows


def _stripped(rows: list[dict]) -> list[dict]:
    return [dict(r, order_sn=r["order_sn"].replace("\x00", "")) for r in rows]


def _side(url: str, role: str, rel: tuple) -> tuple[int, int, list[str]]:
    db = open_database(role, url)
    with db.engine.connect() as conn:
        r = SideReader(Side(db, role, (rel,)), ECS, Scope(), conn)
        (n, s), = r.checksums([(0, 10**12)], 0, 10**12).values()
        texts = sorted("|".join(row[1:]) for row in r.rows([(0, 10**12)]))
        r.close()
    db.dispose()
    return n, s, texts


def test_edge_values_agree_on_every_engine(tmp_path, mysql_url, pg_url):
    rows = edge_rows()
    clean = _stripped(rows)
    want = (len(rows), sum(row_hash(ECS, r) for r in clean),
            sorted(row_text(ECS, r) for r in clean))
    # the reference itself leaves NUL out, so a row the landing stripped is not "changed"
    assert [row_hash(ECS, r) for r in rows] == [row_hash(ECS, r) for r in clean]
    assert row_text(ECS, clean[1]).split("|")[4] == "~N"  # NULL
    assert row_text(ECS, clean[0]).split("|")[4] == ""  # the empty string
    write_source(f"sqlite:///{tmp_path}/s.sqlite", rows)
    write_source(mysql_url, rows)
    write_warehouse(f"duckdb:///{tmp_path}/w.duckdb", "m", "t", rows)
    write_warehouse(pg_url, "m", "t", clean)  # PostgreSQL cannot hold NUL: landed stripped
    # SQLite: the checksums (hashed in DuckDB over its rows read as Arrow); its own SQL's
    # row text keeps NUL (its replace() cannot match char(0)), so only NUL-free rows there
    n, s, texts = _side(f"sqlite:///{tmp_path}/s.sqlite", "source", (None, "ecs_order_info"))
    assert (n, s) == want[:2]
    assert [t for t in texts if "\x00" not in t] == sorted(
        row_text(ECS, r) for r in rows if "\x00" not in r["order_sn"])
    assert _side(mysql_url, "source", (None, "ecs_order_info")) == want
    assert _side(f"duckdb:///{tmp_path}/w.duckdb", "warehouse", ("m", "t")) == want
    assert _side(pg_url, "warehouse", ("m", "t")) == want


def test_split_span_covers_the_ranges_once():
    ranges = [(0, 10), (100, 5_000_000), (6_000_000, 6_000_001)]
    parts = split_span(ranges, 3)
    assert len(parts) == 3
    flat = sorted(r for p in parts for r in p)
    assert all(lo < hi for lo, hi in flat)
    covered = sum(hi - lo for lo, hi in flat)
    assert covered == sum(hi - lo for lo, hi in ranges)
    for (_, hi), (lo, _) in zip(flat, flat[1:], strict=False):
        assert hi <= lo  # no key in two parts
    spans = [sum(hi - lo for lo, hi in p) for p in parts]
    assert max(spans) - min(spans) <= 1_700_000  # about a third each
    assert split_span([(0, SPLIT_MIN_KEYS - 1)], 4) == [[(0, SPLIT_MIN_KEYS - 1)]]
    assert split_span(ranges, 1) == [ranges]


def test_split_scan_gives_the_same_checksums(mysql_url, pg_url):
    rows = _stripped(edge_rows())
    write_source(mysql_url, rows)
    write_warehouse(pg_url, "m", "t", rows)
    for url, role, rel in ((mysql_url, "source", (None, "ecs_order_info")),
                           (pg_url, "warehouse", ("m", "t"))):
        db = open_database(role, url)
        with db.engine.connect() as conn:
            one = SideReader(Side(db, role, (rel,)), ECS, Scope(), conn, connections=1)
            three = SideReader(Side(db, role, (rel,)), ECS, Scope(), conn, connections=3)
            # the keys span ~12M: three parts of ~4M keys, and 3M-key buckets straddle the
            # parts' edges (their counts and sums come from two connections)
            span = [(0, rows[-1]["order_id"] + 1)]
            for width in (1 << 16, 3_000_017):
                a = one.checksums(span, 0, width)
                b = three.checksums(span, 0, width)
                assert a == b and sum(n for n, _ in a.values()) == len(rows)
            assert len(three._more) == 2  # the split did run on three connections
            three.close()
        db.dispose()


def test_split_compare_finds_injected_differences(mysql_url, pg_url):
    rows = _stripped(edge_rows())
    write_source(mysql_url, rows)
    write_warehouse(pg_url, "settlement_ods", "mart_ecs_order_info", rows)
    src, wh = open_database("source", mysql_url), open_database("warehouse", pg_url)
    with wh.engine.begin() as c:
        c.execute(sa.text("DELETE FROM settlement_ods.mart_ecs_order_info WHERE order_id = :k"),
                  {"k": rows[7]["order_id"]})
        c.execute(sa.text("UPDATE settlement_ods.mart_ecs_order_info SET declared_value = "
                          "-declared_value - 0.01 WHERE order_id = :k"),
                  {"k": rows[1]["order_id"]})
        c.execute(sa.text("UPDATE settlement_ods.mart_ecs_order_info SET shipping_channel = "
                          "NULL WHERE order_id = :k"), {"k": rows[0]["order_id"]})  # '' → NULL
    left = Side(src, "source", ((None, "ecs_order_info"),))
    right = Side(wh, "warehouse", (("settlement_ods", "mart_ecs_order_info"),))
    rep = compare_sides(ECS, left, right, settings=Settings(connections=2))
    assert (rep.missing, rep.extra, rep.changed) == (1, 0, 2)
    assert rep.changed_columns == {"declared_value": 1, "shipping_channel": 1}
    src.dispose()
    wh.dispose()

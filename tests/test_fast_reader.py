"""The connectorx reader (keyset pages) returns exactly what the pymysql reader returns.

Both readers run the real extract statements (backfill and incremental windows) against a
MariaDB source holding simulated data plus rows with NULLs, empty strings, ties on the
timestamp column and extreme values; the typed frames must be equal cell for cell, chunk
boundaries included.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from ot_core.config import load_config
from ot_core.contract import CONTRACTS
from ot_core.db.connect import open_database
from ot_core.engines import registered
from ot_core.pipeline.extract import plan_window, read_window
from ot_core.simulate import simulate
from ot_core.timeutil import parse_as_of, to_epoch

pytest.importorskip("connectorx")
pytestmark = pytest.mark.servers

AS_OF = "2026-03-03T00:00:00Z"


def _odd_rows(url: str) -> None:
    """Rows the simulator never writes: NULLs, '', boundary ties, large keys and values."""
    eng = sa.create_engine(url)
    t = to_epoch(parse_as_of("2026-03-01T00:00:00Z"))
    with eng.begin() as c:
        c.execute(sa.text(
            "INSERT INTO ecs_order_info (order_id, order_sn, partner_id, store_id, "
            "shipping_channel, consignee_country, weight_grams, declared_value, currency, add_time) "
            "VALUES (:a, :sn, 7, NULL, '', NULL, NULL, :v, NULL, :t)"),
            [{"a": 9_000_000_000_000_000 + i, "sn": f"odd{i}", "v": v, "t": t}
             for i, v in enumerate([None, Decimal("0.00"), Decimal("9999999999.99"),
                                    Decimal("-0.01"), Decimal("1.05")])])
        c.execute(sa.text(
            "INSERT INTO uni_tracking_info (order_id, tracking_no, carrier_code, status, "
            "latest_event, update_time) VALUES (:a, NULL, '', 0, 'x\u00e9\u4e2d', :t)"),
            [{"a": 9_000_000_000_000_000 + i, "t": t} for i in range(5)])
    eng.dispose()


def _read(url: str, table: str, watermark: int | None, upper: int, chunk: int,
          monkeypatch, reader: str) -> list[pd.DataFrame]:
    monkeypatch.setenv("OT_SOURCE_READER", reader)
    assert registered()["mysql"].__module__ == "ot_core.engines.mysql"
    from ot_core.engines.mysql import reader_name

    assert reader_name() == reader
    cfg = load_config()
    db = open_database("source", url)
    window = plan_window(table, cfg.table(table), watermark, upper)
    try:
        with db.engine.connect() as conn:
            return list(read_window(conn, db.backend, CONTRACTS[table], cfg.table(table),
                                    window, chunk))
    finally:
        db.dispose()


@pytest.mark.parametrize("table", sorted(CONTRACTS))
def test_fast_reader_matches_pymysql(mysql_url, monkeypatch, table):
    simulate("2026-03-03", start="2026-02-27", orders_per_day=40, seed=5, source=mysql_url)
    _odd_rows(mysql_url)
    upper = to_epoch(parse_as_of(AS_OF))
    mid = to_epoch(parse_as_of("2026-03-01T00:00:05Z"))
    for watermark, chunk in ((None, 37), (mid, 30), (None, 100_000)):
        slow = _read(mysql_url, table, watermark, upper, chunk, monkeypatch, "pymysql")
        fast = _read(mysql_url, table, watermark, upper, chunk, monkeypatch, "connectorx")
        assert sum(map(len, slow)) > 0 and (chunk > 1000 or len(slow) > 1)
        assert [len(f) for f in fast] == [len(f) for f in slow]
        a = pd.concat(slow, ignore_index=True)
        b = pd.concat(fast, ignore_index=True)
        assert list(a.columns) == list(b.columns) == CONTRACTS[table].column_names
        assert dict(a.dtypes) == dict(b.dtypes)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        # Decimals keep their scale and type, not just their value
        for col in a.columns:
            assert [type(v) for v in a[col]] == [type(v) for v in b[col]], col
            assert [str(v) for v in a[col]] == [str(v) for v in b[col]], col



@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(
    st.none(),
    st.integers(min_value=-10**11, max_value=10**11).map(lambda c: c / 100),  # whole cents
    st.floats(min_value=-1e9, max_value=1e9), st.just(float("nan")),
    st.sampled_from([0.0, -0.0, 0.125, 1.005, 2.675, 19.99, 1e10, -99999999.99]),
), max_size=40), st.booleans())
def test_typed_frame_decimals_are_exact_or_refused(values, as_decimal):
    """DECIMAL(12,2) values arrive exactly, on the vectorised path and the per-value one
    alike; a value that would be rounded or does not fit stops the read, naming the first
    such value, never a rounded copy of it."""
    from ot_core.pipeline.frames import ValueOutOfContract, typed_frame

    if as_decimal:  # what pymysql hands over: Decimals of various scales, and None
        col = [None if v is None or v != v else Decimal(repr(v)) for v in values]
        series = pd.Series(col, dtype="object")
    else:  # what SQLite / connectorx hand over: floats with NaN for NULL
        series = pd.Series([float("nan") if v is None else v for v in values], dtype="float64")
    n = len(series)
    frame = pd.DataFrame({c: [None] * n for c in CONTRACTS["ecs_order_info"].column_names})
    frame["order_id"], frame["partner_id"], frame["add_time"] = range(n), [1] * n, [0] * n
    frame["order_sn"] = [f"SN{i}" for i in range(n)]
    frame["declared_value"] = series
    exact = [None if (isinstance(v, float) and v != v) or v is None else Decimal(repr(v))
             if isinstance(v, float) else v for v in series.tolist()]
    bad = [v for v in exact if v is not None and (v != v.quantize(Decimal("0.01"))
                                                   or abs(v) >= Decimal(10) ** 10)]
    if bad:
        with pytest.raises(ValueOutOfContract, match="'declared_value'"):
            typed_frame(frame, CONTRACTS["ecs_order_info"])
        return
    got = typed_frame(frame, CONTRACTS["ecs_order_info"])["declared_value"].tolist()
    want = [None if v is None else v.quantize(Decimal("0.01")) for v in exact]
    assert [(type(x), str(x)) for x in got] == [(type(x), str(x)) for x in want]


def test_duckdb_bulk_insert_keeps_wide_decimals_after_small_ones(tmp_path):
    """A chunk whose first prices are small still loads a wide one, exactly."""
    from ot_core.engines.duckdb import DuckDBBackend  # noqa: F401 - registered via registry

    db = open_database("warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}")
    values = [Decimal("0.01")] * 3000 + [None, Decimal("9999999999.99"), Decimal("-12345.60")]
    frame = pd.DataFrame({"v": pd.Series(values, dtype="object")})
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v DECIMAL(12, 2))")
            db.backend.bulk_insert(conn, None, "t", ["v"], frame)
            got = [r[0] for r in conn.exec_driver_sql("SELECT v FROM t")]
    finally:
        db.dispose()
    assert got == values

"""Every source reader returns the same typed Arrow rows for the same source.

The readers (connectorx: keyset pages and parallel key ranges; the DB-API cursor) run the
real extract statements (a first extraction and an incremental window, small and large
chunks) against a SQLite file and a MariaDB database holding simulated data plus rows the
simulator never writes: NULLs, empty strings, DECIMAL edge values, unicode, 255-character
strings, keys near the BIGINT limit. The rows, the Arrow types and the chunk bounds must
hold on every reader; a value the contract refuses is refused by every reader alike, naming
the value.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ot_core.config import load_config
from ot_core.contract import CONTRACTS
from ot_core.db.connect import open_database
from ot_core.pipeline.batches import contract_schema, typed_rows, typed_table
from ot_core.pipeline.extract import plan_window, read_window
from ot_core.pipeline.frames import ValueOutOfContract
from ot_core.pipeline.readers import PARTITIONS, reader_name
from ot_core.simulate import simulate
from ot_core.timeutil import parse_as_of, to_epoch

AS_OF = "2026-03-03T00:00:00Z"
ODD_AT = "2026-03-01T00:00:00Z"
BIG = 9_000_000_000_000_000
PRICES = [None, Decimal("0.00"), Decimal("9999999999.99"), Decimal("-9999999999.99"),
          Decimal("-0.01"), Decimal("1.05"), Decimal("0.10"), Decimal("2.68"), Decimal("12")]
TEXTS = [None, "", "x\u00e9\u4e2d\U0001F69A", "\u00e9" * 255, "a,b\n\"c\"", "\\N"]


def _cut(text: str | None, n: int) -> str | None:
    return None if text is None else text[:n]


def _odd_rows(url: str) -> None:
    """Rows the simulator never writes, at one instant inside both windows read."""
    eng = sa.create_engine(url)
    t = to_epoch(parse_as_of(ODD_AT))
    with eng.begin() as c:
        c.execute(sa.text(
            "INSERT INTO ecs_order_info (order_id, order_sn, partner_id, store_id, "
            "shipping_channel, consignee_country, weight_grams, declared_value, currency, "
            "add_time) VALUES (:a, :sn, :p, NULL, :ch, NULL, :w, :v, NULL, :t)"),
            [{"a": BIG + i, "sn": f"odd{i}", "p": 2**31 - 1 if i % 2 else -2**31,
              "ch": _cut(TEXTS[i % len(TEXTS)], 32), "w": None if i % 3 else 0,
              "v": None if v is None else (str(v) if "sqlite" in url else v), "t": t}
             for i, v in enumerate(PRICES)])
        c.execute(sa.text(
            "INSERT INTO uni_tracking_info (order_id, tracking_no, carrier_code, status, "
            "latest_event, update_time) VALUES (:a, NULL, '', 0, :e, :t)"),
            [{"a": BIG + i, "e": e, "t": t} for i, e in enumerate(TEXTS)])
        c.execute(sa.text(
            "INSERT INTO uni_tracking_spath (id, order_id, pathTime, path_code, path_info, "
            "path_location, add_time) VALUES (:a, :a, :t, :c, :e, NULL, :t)"),
            [{"a": BIG + i, "c": "", "e": e, "t": t} for i, e in enumerate(TEXTS)])
    eng.dispose()


def _read(url, table, watermark, chunk, monkeypatch, reader) -> list[pa.Table]:
    monkeypatch.setenv("OT_SOURCE_READER", reader)
    cfg = load_config()
    db = open_database("source", url)
    assert reader_name(db.backend, db.url) == reader
    window = plan_window(table, cfg.table(table), watermark, to_epoch(parse_as_of(AS_OF)))
    try:
        with db.engine.connect() as conn:
            # chunks smaller than a config allows, to see the bounds (model_copy: no check)
            small = cfg.model_copy(update={"cycle": cfg.cycle.model_copy(
                update={"chunk_rows": chunk})})
            return list(read_window(conn, db.backend, small, window))
    finally:
        db.dispose()


def _same_rows_every_reader(url, table, monkeypatch):
    mid = to_epoch(parse_as_of(ODD_AT)) - 5
    schema = contract_schema(load_config().landed(table))  # the CDC column may be NULL
    key = CONTRACTS[table].key[0]
    for watermark, chunk in ((None, 37), (mid, 30), (None, 100_000)):
        got = {}
        for reader in ("dbapi", "connectorx"):
            chunks = _read(url, table, watermark, chunk, monkeypatch, reader)
            assert chunks, (reader, watermark)
            for part in chunks:
                assert part.schema == schema  # exact contract types on every reader
                limit = chunk * (PARTITIONS if watermark is None and reader == "connectorx"
                                 else 1)
                assert 0 < part.num_rows <= limit  # memory bounded by one chunk
            got[reader] = pa.concat_tables(chunks)
        slow, fast = got["dbapi"], got["connectorx"]
        if watermark is None:  # key ranges: the same rows, in key order either way
            slow, fast = slow.sort_by(key), fast.sort_by(key)
        assert slow.num_rows == fast.num_rows > 0
        assert slow.to_pylist() == fast.to_pylist()
        assert slow.equals(fast)
        if watermark is not None:  # the odd rows are in both windows
            rows = {r[key]: r for r in slow.to_pylist() if r[key] >= BIG}
            assert len(rows) >= 6
            if table == "ecs_order_info":
                assert [rows[BIG + i]["declared_value"] for i in range(len(PRICES))] == [
                    None if v is None else v.quantize(Decimal("0.01")) for v in PRICES]
            elif table == "uni_tracking_info":
                assert [rows[BIG + i]["latest_event"] for i in range(len(TEXTS))] == TEXTS


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    simulate("2026-03-03", start="2026-02-27", orders_per_day=40, seed=5, source=url)
    _odd_rows(url)
    return url


@pytest.mark.parametrize("table", sorted(CONTRACTS))
def test_readers_agree_on_sqlite(sqlite_url, monkeypatch, table):
    _same_rows_every_reader(sqlite_url, table, monkeypatch)


@pytest.mark.servers
@pytest.mark.parametrize("table", sorted(CONTRACTS))
def test_readers_agree_on_mariadb(mysql_url, monkeypatch, table):
    simulate("2026-03-03", start="2026-02-27", orders_per_day=40, seed=5, source=mysql_url)
    _odd_rows(mysql_url)
    _same_rows_every_reader(mysql_url, table, monkeypatch)


@pytest.mark.parametrize("reader", ["dbapi", "connectorx"])
@pytest.mark.parametrize("column, value, why", [
    ("weight_grams", "'heavy'", "'heavy'"),          # text in an INT column
    ("declared_value", "12.345", "12.345"),          # would be rounded
    ("declared_value", "123456789012.5", "123456789012.5"),  # too large for DECIMAL(12,2)
    ("order_sn", "'" + "s" * 33 + "'", "s" * 33),   # longer than VARCHAR(32)
    ("partner_id", "2147483648", "2147483648"),      # does not fit INT
])
def test_every_reader_refuses_the_same_value(sqlite_url, monkeypatch, reader, column, value,
                                              why):
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as c:
        c.execute(f"UPDATE ecs_order_info SET {column} = {value} WHERE order_id = "
                  "(SELECT MIN(order_id) FROM ecs_order_info)")
    with pytest.raises(ValueOutOfContract, match=f"'{column}'.*{why[:20]}"):
        _read(sqlite_url, "ecs_order_info", None, 50, monkeypatch, reader)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.one_of(
    st.none(),
    st.integers(min_value=-10**12 + 1, max_value=10**12 - 1).map(lambda c: c / 100),
    st.floats(min_value=-2e10, max_value=2e10), st.just(float("nan")),
    st.sampled_from([0.0, -0.0, 0.125, 1.005, 2.675, 19.99, 1e10, -99999999.99,
                     9999999999.99, float("inf")]),
), max_size=40))
def test_float_decimals_vectorised_match_value_by_value(values):
    """The vectorised DECIMAL(12,2) check over doubles (SQLite, connectorx) accepts and
    refuses exactly what the value-by-value rules do, and builds the same decimals."""
    ecs = CONTRACTS["ecs_order_info"]
    n = len(values)
    base = {c: [None] * n for c in ecs.column_names}
    base.update(order_id=list(range(n)), partner_id=[1] * n, add_time=[0] * n,
                order_sn=[f"SN{i}" for i in range(n)])
    fast_in = pa.table({**{k: pa.array(v, type=pa.int64()) if k in ("order_id", "partner_id",
                                                                     "add_time")
                           else pa.array(v, type=pa.string()) for k, v in base.items()},
                        "declared_value": pa.array(values, type=pa.float64())})
    rows = list(zip(*[base[c] if c != "declared_value" else values for c in ecs.column_names],
                    strict=True))

    def outcome(fn):
        try:
            return fn().column("declared_value").to_pylist()
        except ValueOutOfContract as e:
            return str(e)

    fast = outcome(lambda: typed_table(fast_in, ecs))
    from ot_core.pipeline.batches import _exact

    def slow_path():
        arr = _exact(list(values), ecs, ecs.column("declared_value"), pa.decimal128(12, 2),
                     list(range(n)))
        return pa.table({"declared_value": arr})

    assert fast == outcome(slow_path)
    assert outcome(lambda: typed_rows(rows, ecs.column_names, ecs)) == fast


_EDGES = [0, 1, -1, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**63 - 1, -2**63, 2**64 - 1,
          10**10 - 1, 10**10, -10**10 + 1, -10**10]


@settings(max_examples=150, deadline=None)
@given(column=st.sampled_from(["partner_id", "add_time", "declared_value"]),
       arrow_type=st.sampled_from([pa.int64(), pa.uint64(), pa.int32(), pa.uint32(),
                                   pa.int16(), pa.int8()]),
       values=st.lists(st.one_of(st.none(), st.sampled_from(_EDGES),
                                 st.integers(min_value=-2**64, max_value=2**64)),
                       max_size=30),
       offset=st.integers(min_value=0, max_value=3))
@example(column="declared_value", arrow_type=pa.int64(), values=[10**10], offset=1)
@example(column="declared_value", arrow_type=pa.int64(), values=[-10**10, None], offset=0)
@example(column="add_time", arrow_type=pa.int64(), values=[None, -1], offset=2)
@example(column="partner_id", arrow_type=pa.uint64(), values=[2**31, None], offset=0)
def test_integer_columns_vectorised_match_value_by_value(column, arrow_type, values, offset):
    """Integers read into INT, an epoch BIGINT and DECIMAL(12,2) columns: the checks on
    the buffers (a slice of a bigger array included) accept and refuse exactly what the
    value-by-value rules do, and give the same values."""
    info = (2**arrow_type.bit_width - 1 if pa.types.is_unsigned_integer(arrow_type)
            else 2**(arrow_type.bit_width - 1) - 1)
    low = 0 if pa.types.is_unsigned_integer(arrow_type) else -info - 1
    values = [v if v is None or low <= v <= info else None for v in values]
    ecs = CONTRACTS["ecs_order_info"]
    col = ecs.column(column)
    target = contract_schema(ecs).field(column).type
    arr = pa.array([0] * offset + values, type=arrow_type).slice(offset)
    from ot_core.pipeline.batches import _exact, _fast, _Slow

    def outcome(fn):
        try:
            return fn().to_pylist()
        except ValueOutOfContract as e:
            return str(e)

    def fast():
        try:
            out = _fast(arr, col, target)
        except _Slow:
            return _exact(arr.to_pylist(), ecs, col, target)
        assert out.type == target
        return out

    assert outcome(fast) == outcome(lambda: _exact(list(values), ecs, col, target))


def test_duckdb_load_keeps_wide_decimals_after_small_ones(tmp_path):
    """A chunk whose first prices are small still loads a wide one, exactly."""
    db = open_database("warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}")
    values = [Decimal("0.01")] * 3000 + [None, Decimal("9999999999.99"), Decimal("-12345.60")]
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v DECIMAL(12, 2))")
            db.backend.load_arrow(conn, None, "t",
                                  pa.table({"v": pa.array(values, pa.decimal128(12, 2))}))
            got = [r[0] for r in conn.exec_driver_sql("SELECT v FROM t")]
    finally:
        db.dispose()
    assert got == values


@pytest.mark.servers
def test_postgres_copy_keeps_every_value(pg_url):
    """COPY streamed from Arrow: NULL stays NULL, '' stays '', quotes, commas, newlines,
    backslashes and unicode arrive as written; decimals and BIGINTs exactly."""
    db = open_database("warehouse", pg_url)
    data = pa.table({
        "s": pa.array(TEXTS, pa.string()),
        "v": pa.array(PRICES[:len(TEXTS)], pa.decimal128(12, 2)),
        "k": pa.array([BIG + i if i % 2 else -BIG for i in range(len(TEXTS))], pa.int64()),
    })
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TEMP TABLE t (s VARCHAR(255), v DECIMAL(12, 2), "
                                 "k BIGINT)")
            db.backend.load_arrow(conn, None, "t", data)
            got = [tuple(r) for r in conn.exec_driver_sql("SELECT s, v, k FROM t")]
    finally:
        db.dispose()
    assert got == list(zip(*[c.to_pylist() for c in data.columns], strict=True))


@pytest.mark.servers
def test_a_page_read_on_a_connection_the_server_dropped_is_transient(mysql_url):
    """The cursor a connectorx failure falls back to: a server that went away is a
    transient failure (retry later, exit 75), not a value the source refused."""
    from ot_core.errors import SourceUnavailable
    from ot_core.pipeline.readers import _one_page_dbapi

    eng = sa.create_engine(mysql_url)
    admin = sa.create_engine(mysql_url)
    with eng.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE ecs_order_info (order_id BIGINT PRIMARY KEY)")
        me = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        with admin.connect() as a:
            a.exec_driver_sql(f"KILL {int(me)}")
        with pytest.raises(SourceUnavailable, match="reading the source failed"):
            _one_page_dbapi(conn, CONTRACTS["ecs_order_info"], "SELECT order_id FROM ecs_order_info")
    eng.dispose()
    admin.dispose()


@pytest.mark.servers
def test_spare_connections_count_the_users_limit_and_its_open_connections(mysql_url):
    """What decides, before connectorx opens its pool, whether this user may have it: no
    limit says None; a user limited to three with two open has one to spare."""
    import uuid

    from ot_core.engines import backend_for

    url = sa.engine.make_url(mysql_url)
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    backend = backend_for(admin)
    user = f"ot_spare_{uuid.uuid4().hex[:6]}"
    with admin.connect() as c:
        assert backend.spare_connections(c) is None  # the test's user has no limit
        c.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw' "
                          "WITH MAX_USER_CONNECTIONS 3")
        c.exec_driver_sql(f"GRANT SELECT ON {url.database}.* TO '{user}'@'%%'")
    limited = sa.create_engine(url.set(username=user, password="pw"))
    try:
        with limited.connect() as one:
            assert backend.spare_connections(one) == 2
            with limited.connect() as _two:
                assert backend.spare_connections(one) == 1
    finally:
        limited.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()

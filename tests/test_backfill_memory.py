"""DuckDB backfill: the buffer pool is bounded while a first extraction lands, merges and
runs the lifecycle, and unbounded again afterwards (steady cycles are faster without the
bound); a bound the user set, any way they set it, is left alone; a steady cycle never
touches it."""

from __future__ import annotations

import duckdb
import pytest
import sqlalchemy as sa

from ot_core.engines import backend_for
from ot_core.engines import duckdb as ddb
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate


def _limit(conn) -> str:
    with conn.begin():  # between the cycle's transactions, as the hook itself runs
        return conn.exec_driver_sql("SELECT current_setting('memory_limit')").scalar()


def _bytes(setting: str) -> float:
    number, unit = setting.split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


def test_first_load_bounds_duckdb_memory_then_restores_it(tmp_path):
    eng = sa.create_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        backend = backend_for(eng, "warehouse")
        with eng.connect() as conn:
            default = _limit(conn)
            with backend.first_load(conn):
                bounded = _limit(conn)
            assert _limit(conn) == default
            with pytest.raises(RuntimeError), backend.first_load(conn):
                raise RuntimeError("the cycle failed")
            assert _limit(conn) == default  # restored on the way out of a failure too
    finally:
        eng.dispose()
    assert ddb.FIRST_LOAD_MEMORY_LIMIT.endswith("MB")  # DuckDB's MB: 10**6 bytes
    assert _bytes(bounded) == pytest.approx(int(ddb.FIRST_LOAD_MEMORY_LIMIT[:-2]) * 1e6, rel=1e-3)
    assert _bytes(default) > 4 * _bytes(bounded)


@pytest.mark.parametrize("how", ["env", "url", "url alias, capitals", "caller's engine"])
def test_a_bound_the_user_set_is_left_alone(tmp_path, monkeypatch, how):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    if how == "env":
        monkeypatch.setenv("OT_DUCKDB_MEMORY_LIMIT", "300MB")
        eng = sa.create_engine(url, **backend_for(sa.create_engine(url), "warehouse").engine_kwargs())
    elif how == "url":
        eng = sa.create_engine(f"{url}?memory_limit=300MB")
    elif how == "url alias, capitals":
        eng = sa.create_engine(f"{url}?MAX_MEMORY=300MB")
    else:
        eng = sa.create_engine(url, connect_args={"config": {"memory_limit": "300MB"}})
    try:
        backend = backend_for(eng, "warehouse")
        with eng.connect() as conn:
            before = _limit(conn)
            with backend.first_load(conn):
                assert _limit(conn) == before
            assert _limit(conn) == before
    finally:
        eng.dispose()
    assert before == duckdb.connect(config={"memory_limit": "300MB"}).execute(
        "SELECT current_setting('memory_limit')").fetchone()[0]


def test_only_a_cycle_that_backfills_bounds_memory(embedded, monkeypatch):
    seen: list[str] = []
    real = ddb.DuckDBBackend.first_load

    def watched(self, conn):
        with real(self, conn):
            seen.append(_limit(conn))
            yield

    monkeypatch.setattr(ddb.DuckDBBackend, "first_load", ddb.contextmanager(watched))
    simulate("2026-03-01", start="2026-02-20", orders_per_day=40, seed=3, source=embedded.source_url)
    first = run_cycle("2026-02-28T12:00:00Z", source=embedded.source_url,
                      warehouse=embedded.warehouse_url)
    assert first.tables["uni_tracking_spath"].rows_merged > 0
    assert len(seen) == 1 and _bytes(seen[0]) < 2**30
    run_cycle("2026-03-01T00:00:00Z", source=embedded.source_url, warehouse=embedded.warehouse_url)
    assert len(seen) == 1  # the steady cycle ran unbounded


def test_landing_many_chunks_in_one_transaction_does_not_keep_them(tmp_path):
    """A backfill lands its batch as many Arrow chunks inside one transaction: each chunk's
    memory must be given back once it is appended. (Through register()/unregister(), DuckDB
    2.0 kept every chunk alive: RSS grew by the batch's whole size, 4.7 GiB at a tenth of
    production.) 1 GB of chunks through a 256 MB buffer pool grows RSS by under 600 MiB."""
    import gc

    import numpy as np
    import psutil
    import pyarrow as pa

    proc = psutil.Process()
    eng = sa.create_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    rows, chunks = 625_000, 50  # 4 BIGINT columns: 20 MB of Arrow buffers a chunk
    try:
        backend = backend_for(eng, "warehouse")
        with eng.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE landing (a BIGINT, b BIGINT, c BIGINT, d BIGINT)")
            conn.commit()
            with backend.first_load(conn), conn.begin():
                gc.collect()
                before = proc.memory_info().rss
                for i in range(chunks):
                    base = np.arange(i * rows, (i + 1) * rows, dtype=np.int64)
                    chunk = pa.table({"a": base, "b": base * 3, "c": base * 5, "d": base * 7})
                    assert backend.load_arrow(conn, None, "landing", chunk) == rows
                    del chunk, base
                grown = proc.memory_info().rss - before
            total = conn.exec_driver_sql("SELECT count(*), sum(d) FROM landing").one()
    finally:
        eng.dispose()
    n = rows * chunks
    assert total == (n, 7 * n * (n - 1) // 2)  # every row landed, once
    assert grown < 600 * 2**20, f"RSS grew by {grown >> 20} MiB landing {chunks * 20} MB of chunks"

"""Benchmark of ``ot compare``'s engine: a table pair with no differences, then with
scattered differences, on DuckDB and/or PostgreSQL. Prints figures; asserts nothing.

    .venv/bin/python bench/compare.py --backend duckdb --rows 10000000
    .venv/bin/python bench/compare.py --backend postgresql --rows 2000000 \
        --pg-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres

Both relations are ECS-shaped tables in one warehouse (a legacy copy against the new
mart), seeded inside the database with generate_series. What to look at: seconds per
run, and rows_transferred, which must follow segments and differences, not the table size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ot_core.config import load_config  # noqa: E402
from ot_core.contract import ECS  # noqa: E402
from ot_core.db.connect import open_database  # noqa: E402
from ot_core.quality.compare import Scope, Settings, Side, compare_sides  # noqa: E402

SEED = """
CREATE TABLE {rel} AS
SELECT i * 2 + 1 AS order_id,
       'SN' || CAST(i AS VARCHAR) AS order_sn,
       CAST(i % 320 AS INTEGER) AS partner_id,
       CASE WHEN i % 5 = 0 THEN NULL ELSE CAST(i % 1000 AS INTEGER) END AS store_id,
       CASE WHEN i % 3 = 0 THEN 'S|T' ELSE 'STD' END AS shipping_channel,
       CAST('US' AS VARCHAR(2)) AS consignee_country,
       CAST(i % 5000 AS INTEGER) AS weight_grams,
       CAST((i % 100000) / 100.0 AS DECIMAL(12, 2)) AS declared_value,
       CAST('USD' AS VARCHAR(3)) AS currency,
       1700000000 + i AS add_time,
       i AS _raw_id, CAST(1 AS BIGINT) AS _batch_id
FROM generate_series(0, {last}) AS g(i)
"""


def seed(url: str, rows: int) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as c:
        for schema in ("legacy_ods", "bench_ods"):
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
        c.execute(sa.text(SEED.format(rel="legacy_ods.ecs", last=rows - 1)))
        c.exec_driver_sql("CREATE TABLE bench_ods.ecs AS SELECT * FROM legacy_ods.ecs")
        if eng.dialect.name == "postgresql":
            for s in ("legacy_ods", "bench_ods"):
                c.exec_driver_sql(f"ALTER TABLE {s}.ecs ADD PRIMARY KEY (order_id)")
                c.exec_driver_sql(f"ANALYZE {s}.ecs")
    eng.dispose()


def scatter(url: str, rows: int, n: int) -> None:
    """n differences spread over the key range: a third changed, missing, extra each."""
    eng = sa.create_engine(url)
    step = max(1, rows // (n + 1))
    with eng.begin() as c:
        for j in range(n):
            key = (step * (j + 1)) * 2 + 1
            kind = j % 3
            if kind == 0:
                c.execute(sa.text("UPDATE bench_ods.ecs SET shipping_channel = 'EXP' "
                                  "WHERE order_id = :k"), {"k": key})
            elif kind == 1:
                c.execute(sa.text("DELETE FROM bench_ods.ecs WHERE order_id = :k"), {"k": key})
            else:
                c.execute(sa.text("INSERT INTO bench_ods.ecs SELECT order_id + 1, order_sn, "
                                  "partner_id, store_id, shipping_channel, consignee_country, "
                                  "weight_grams, declared_value, currency, add_time, _raw_id, "
                                  "_batch_id FROM bench_ods.ecs WHERE order_id = :k"), {"k": key})
    eng.dispose()


def run(url: str, label: str) -> dict:
    db = open_database("warehouse", url)
    c = load_config().compare
    settings = Settings(c.first_segments, c.fanout, c.leaf_rows, c.sample_keys)
    t0 = time.perf_counter()
    rep = compare_sides(ECS, Side(db, "legacy", (("legacy_ods", "ecs"),)),
                        Side(db, "new", (("bench_ods", "ecs"),)), Scope(), settings)
    secs = time.perf_counter() - t0
    db.dispose()
    print(f"  {label:<16} {secs:7.2f} s  rows {rep.rows_source:,}/{rep.rows_target:,}  "
          f"missing {rep.missing} extra {rep.extra} changed {rep.changed}  "
          f"rows_transferred {rep.rows_transferred:,}  checksum queries {rep.checksum_queries}  "
          f"leaf segments {rep.leaf_segments}")
    return {"seconds": secs, **rep.to_dict()}


def bench(url: str, rows: int, diffs: list[int]) -> None:
    t0 = time.perf_counter()
    seed(url, rows)
    print(f"{sa.engine.make_url(url).get_backend_name()}: {rows:,} rows per side, seeded in "
          f"{time.perf_counter() - t0:.1f} s")
    run(url, "no differences")
    done = 0
    for n in diffs:
        if n > done:
            scatter(url, rows, n - done)
        done = n
        run(url, f"{n} differences")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["duckdb", "postgresql", "both"], default="duckdb")
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--diffs", default="100,1000", help="cumulative difference counts")
    p.add_argument("--pg-url", default=os.environ.get(
        "OT_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"))
    a = p.parse_args()
    diffs = [int(x) for x in a.diffs.split(",") if x]
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, cpus {os.cpu_count()}")
    if a.backend in ("duckdb", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            bench(f"duckdb:///{tmp}/bench.duckdb", a.rows, diffs)
    if a.backend in ("postgresql", "both"):
        admin = sa.create_engine(a.pg_url, isolation_level="AUTOCOMMIT")
        name = f"ot_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            bench(sa.engine.make_url(a.pg_url).set(database=name).render_as_string(
                hide_password=False), a.rows, diffs)
        finally:
            with admin.connect() as c:
                c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.dispose()


if __name__ == "__main__":
    main()

"""``ot compare`` on the embedded pair (SQLite source, DuckDB warehouse), side by side with
bare scans of both sides and, where it is installed, reladiff. Prints figures; asserts
nothing.

    .venv/bin/python bench/compare_embedded.py --days 92 --orders-per-day 10000 --runs 3

1. ``ot simulate`` makes a SQLite source (``--days`` × ``--orders-per-day``), ``ot cycle``
   backfills a DuckDB warehouse from it (both kept in ``--work`` and reused when present).
2. Differences are written into the warehouse copy: ``--changed`` path events get another
   ``path_info``, ``--deleted`` are deleted, spread over the key range.
3. Per run, each as a whole process: ``ot compare --table uts --json`` with the default
   reader (rows read as Arrow, hashed in DuckDB) and with ``OT_SOURCE_READER=dbapi`` (the
   SQLite side hashes through its own SQL); a bare scan of each side (``COUNT(*)`` and two
   sums over the table, in the side's own engine); reladiff over a DuckDB copy of the
   source (it cannot read SQLite) when ``reladiff`` is importable.
Medians of ``--runs``; every compare must find exactly the injected differences.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OT = [sys.executable, "-m", "ot_core"]
MART = "settlement_ods.mart_uni_tracking_spath"


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):  # 1: the compare found differences, as intended
        sys.exit(f"{cmd[2:5]} failed ({p.returncode}): {p.stderr[-1500:]}")
    return wall, p.stdout


def prepare(work: Path, days: int, per_day: int, env: dict[str, str]) -> None:
    src, wh = work / "src.sqlite", work / "wh.duckdb"
    if src.exists() and wh.exists():
        return
    for p in (src, wh):
        p.unlink(missing_ok=True)
    until = "2026-11-01T00:00:00Z"
    t = time.perf_counter()
    _run([*OT, "simulate", "--until", until, "--days", str(days), "--orders-per-day",
          str(per_day)], env)
    print(f"source simulated in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    _run([*OT, "cycle", "--as-of", until], env)
    print(f"warehouse backfilled in {time.perf_counter() - t:.0f} s", flush=True)


def inject(wh: Path, changed: int, deleted: int) -> None:
    import duckdb

    c = duckdb.connect(str(wh))
    c.execute(f"CREATE OR REPLACE TEMP TABLE k AS SELECT id, row_number() OVER (ORDER BY id) "
              f"AS n FROM {MART}")
    total = c.execute("SELECT count(*) FROM k").fetchone()[0]
    step = total // (changed + deleted + 1)
    picks = [i * step for i in range(1, changed + deleted + 1)]
    ids = [r[0] for r in c.execute("SELECT id FROM k WHERE n IN (SELECT unnest(?))",
                                   [picks]).fetchall()]
    c.execute(f"UPDATE {MART} SET path_info = 'changed by the bench' WHERE id IN "
              "(SELECT unnest(?))", [ids[:changed]])
    c.execute(f"DELETE FROM {MART} WHERE id IN (SELECT unnest(?))", [ids[changed:]])
    c.close()


def bare_scans(src: Path, wh: Path) -> tuple[float, float]:
    import duckdb

    t = time.perf_counter()
    con = sqlite3.connect(src)
    con.execute("SELECT count(*), sum(id), sum(pathTime) FROM uni_tracking_spath").fetchone()
    con.close()
    s = time.perf_counter() - t
    t = time.perf_counter()
    c = duckdb.connect(str(wh), read_only=True)
    c.execute(f"SELECT count(*), sum(id), sum(pathTime) FROM {MART}").fetchone()
    c.close()
    return s, time.perf_counter() - t


def reladiff_run(src: Path, work: Path, wh: Path) -> float | None:
    """reladiff's hash diff of every column, source copy against the mart (copy untimed)."""
    try:
        from reladiff import connect_to_table, diff_tables
    except ImportError:
        return None
    import connectorx as cx
    import duckdb

    copy = work / "src_copy.duckdb"
    if not copy.exists():
        data = cx.read_sql(f"sqlite://{src}", "SELECT * FROM uni_tracking_spath",
                           return_type="arrow")
        c = duckdb.connect(str(copy))
        c.register("data", data)
        c.execute("CREATE TABLE uts AS SELECT * FROM data")
        c.close()
    columns = ("order_id", "pathTime", "path_code", "path_info", "path_location", "add_time")
    t = time.perf_counter()
    a = connect_to_table(f"duckdb://main@{copy}", "uts", "id", extra_columns=columns)
    b = connect_to_table(f"duckdb://wh@{wh}", ("settlement_ods", "mart_uni_tracking_spath"),
                         "id", extra_columns=columns)
    n = sum(1 for _ in diff_tables(a, b))
    seconds = time.perf_counter() - t
    a.database.close()
    b.database.close()
    print(f"reladiff: {n} differing rows (+/-) in {seconds:.1f} s", flush=True)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=92)
    ap.add_argument("--orders-per-day", type=int, default=10_000)
    ap.add_argument("--changed", type=int, default=50)
    ap.add_argument("--deleted", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=None, help="folder for the pair (kept, reused)")
    ap.add_argument("--no-dbapi", action="store_true",
                    help="skip the run that hashes in SQLite's own SQL (the slow path)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="ot-compare-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src, wh = work / "src.sqlite", work / "wh.duckdb"
    env = {**os.environ, "OT_SOURCE_URL": f"sqlite:///{src}",
           "OT_WAREHOUSE_URL": f"duckdb:///{wh}", "OT_RUNS_DIR": str(work / "runs"),
           "PYTHONPATH": str(ROOT)}
    env.pop("OT_SOURCE_READER", None)
    prepare(work, a.days, a.orders_per_day, env)
    pristine = work / "wh.pristine.duckdb"
    if not pristine.exists():
        inject(wh, a.changed, a.deleted)
        os.replace(wh, pristine)
    import shutil

    shutil.copy(pristine, wh)
    con = sqlite3.connect(src)
    events = con.execute("SELECT count(*) FROM uni_tracking_spath").fetchone()[0]
    orders = con.execute("SELECT count(*) FROM ecs_order_info").fetchone()[0]
    con.close()
    figures: dict[str, list[float]] = {"arrow": [], "arrow_engine": [], "dbapi": [],
                                       "dbapi_engine": [], "scan_source": [],
                                       "scan_warehouse": [], "reladiff": []}
    found = set()
    for _ in range(a.runs):
        paths = [("arrow", {})] + ([] if a.no_dbapi else [("dbapi", {"OT_SOURCE_READER": "dbapi"})])
        for name, extra in paths:
            wall, out = _run([*OT, "compare", "--table", "uts", "--json"], {**env, **extra})
            rep = json.loads(out[out.index("{"):])
            figures[name].append(wall)
            figures[f"{name}_engine"].append(rep["seconds"])
            found.add((rep["missing"], rep["extra"], rep["changed"]))
        s, w = bare_scans(src, wh)
        figures["scan_source"].append(s)
        figures["scan_warehouse"].append(w)
        r = reladiff_run(src, work, wh)
        if r is not None:
            figures["reladiff"].append(r)
    med = {k: round(statistics.median(v), 2) for k, v in figures.items() if v}
    span = {k: [round(min(v), 2), round(max(v), 2)] for k, v in figures.items() if v}
    scans = med["scan_source"] + med["scan_warehouse"]
    result = {
        "orders": orders, "path_events": events, "runs": a.runs,
        "found (missing, extra, changed)": sorted(found),
        "expected": [a.deleted, 0, a.changed], "median_s": med, "min_max_s": span,
        "arrow_over_bare_scans": round(med["arrow"] / scans, 2),
        "dbapi_over_arrow": round(med["dbapi"] / med["arrow"], 2) if "dbapi" in med else None,
        "reladiff": "installed" if figures["reladiff"] else "not installed",
        "work": str(work),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

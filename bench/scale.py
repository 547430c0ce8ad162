"""Production-volume benchmark: marts of six months at a fraction of production, full-size cycles.

Production is about 200K new orders a day with marts holding six months. At ``--scale``
(0.01 = 1/100, 0.1 = 1/10) this builds a source holding six months of orders at that
fraction of the production rate, with everything ``ot simulate`` makes (late and
out-of-order path events, same-second updates, reactivations about seven months on): the
rows come from ``ot_core.simulate``'s own generators, a creation day at a time, written in
bulk. Then, per pair (SQLite → DuckDB, MariaDB → PostgreSQL; throwaway databases this
script creates and drops):

1. Backfill: ``ot cycle --as-of <end of history> --json`` into an empty warehouse, as a
   whole process under ``/usr/bin/time -v``: rows/s and peak RSS.
2. The steady batches are production-sized whatever the scale: besides the scaled
   history's own activity, each window carries a production-rate stream of orders (200K a
   day, drawn by the same generator with its own seed and keys, created from a week before
   the cycles on; see ``write_stream``): about 2.1K new orders, 9K tracking changes and
   21K path events per 15 minutes.
3. ``--cycles`` steady cycles, each a 15-minute window written to the source then
   ``ot run cycle -p as_of … -p scheduled true`` as the scheduler runs it (whole process:
   runner, kernel, notebook). Then ``rotate_periods``, ``daily_monitoring``, ``maintenance``
   and ``monthly_compare`` for one month of history, each through ``ot run``, wall time
   against the catalogue's timeout.
4. Rows and bytes per mart and history table; ``ot compare`` of every table against the
   source (correctness); the slowest warehouse statements, timed in every child process by
   SQLAlchemy engine events (bench/stmt_timer/sitecustomize.py).

Prints figures (and ``--json`` writes them); asserts nothing about time. Run it niced on a
shared machine:

    nice -n 10 .venv/bin/python bench/scale.py --scale 0.01 --pairs embedded,servers
    nice -n 10 .venv/bin/python bench/scale.py --scale 0.1 --pairs servers --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ot_core.simulate as sim  # noqa: E402
from bench.cycle import Scratch  # noqa: E402
from ot_core.config import load_config  # noqa: E402
from ot_core.db.connect import open_database  # noqa: E402
from ot_core.db.schema import names  # noqa: E402
from ot_core.jobs.catalogue import load_catalogue  # noqa: E402
from ot_core.timeutil import from_epoch, iso, to_epoch, utcnow  # noqa: E402

PRODUCTION_PER_DAY = 200_000
HISTORY_DAYS = 182  # six months of marts
WINDOW = 900  # the cycle's 15 minutes
DAY = sim.DAY
OT = [str(Path(sys.executable).with_name("ot"))]
STREAM_KEY_OFFSET = 500_000  # history keys are day * 1e6 + 1 .. ~2 x the day's orders
STREAM_DAYS = 7  # the stream's orders start this long before the cycles
PAIRS = {"embedded": ("sqlite", "duckdb"), "servers": ("mysql", "postgresql")}
COMPARE_TABLES = ("ecs", "uti", "uts")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- the source ----------------------------------------------------------------------------
def write_source(url: str, seed: int, per_day: int, origin: int, t0: int, t1: int,
                 chunk_days: int = 7) -> dict[str, int]:
    """Apply the scaled history's source events in [t0, t1) with ``simulate.advance`` (a
    chain of shorter advances writes the same rows as one, see ot_core/simulate.py),
    ``chunk_days`` at a time so memory stays bounded."""
    db = open_database("source", url)
    counts = {"orders": 0, "uti_upserts": 0, "path_events": 0}
    try:
        sim.ensure_source(db)
        lo = t0
        while lo < t1:
            hi = min(t1, lo + chunk_days * DAY)
            o, u, e = sim.advance(db, seed, per_day, origin, lo, hi)
            counts["orders"] += o
            counts["uti_upserts"] += u
            counts["path_events"] += e
            lo = hi
    finally:
        db.dispose()
    return counts


def write_stream(url: str, seed: int, start: int, t0: int, t1: int) -> dict[str, int]:
    """The production-rate stream's source events in [t0, t1).

    A second order population drawn by ``simulate``'s own generator at 200K orders a day
    (its seed is ``seed + 1``, its keys ``STREAM_KEY_OFFSET`` above the history's on the same
    day), created from ``start`` on. A 1/100 mart cannot hold a week of production-rate
    orders, so the stream's past before the steady cycles is never written: in each window
    its new orders are inserted, its tracking rows upserted (an order created before the
    cycles gets its first row at its first update in a window) and its path events
    inserted. The warehouse reads what a production cycle reads: about 2.1K new orders,
    9K tracking changes and 21K path events per 15 minutes.
    """
    db = open_database("source", url)
    b = db.backend
    counts = {"orders": 0, "uti_upserts": 0, "path_events": 0}
    sp_cols = [c for c in sim.SPATH.column_names if c != "id"]
    parts: list[tuple] = []
    try:
        with db.engine.begin() as conn:
            for day in range(max(start // DAY, t0 // DAY - sim.HORIZON_DAYS - 1), (t1 - 1) // DAY + 1):
                d = sim._day(seed + 1, day, PRODUCTION_PER_DAY)
                d.order_id = d.order_id + STREAM_KEY_OFFSET
                d.tracking_no = np.char.add("TN", d.order_id.astype(str))
                valid = d.add_time >= start
                new = np.flatnonzero(valid & (d.add_time >= t0) & (d.add_time < t1))
                counts["orders"] += b.executemany(conn, None, sim.ECS.name, sim.ECS.column_names,
                                                  sim._ecs_rows(d, new))
                in_win = valid[d.upd_owner] & (d.upd_time >= t0) & (d.upd_time < t1)
                touched = np.unique(d.upd_owner[in_win])
                if touched.size:
                    rows = sim._uti_state(d, touched, t1)
                    keys = [r[0] for r in rows]
                    uti = sa.table(sim.UTI.name, sa.column("order_id"))
                    for i in range(0, len(keys), 5000):
                        conn.execute(sa.delete(uti).where(uti.c.order_id.in_(keys[i:i + 5000])))
                    counts["uti_upserts"] += b.executemany(conn, None, sim.UTI.name,
                                                           sim.UTI.column_names, rows)
                ev = np.flatnonzero(valid[d.ev_owner] & (d.ev_add_time >= t0) & (d.ev_add_time < t1))
                parts.append((d.ev_add_time[ev], ev, sim._spath_columns(d, ev)))
            if parts:  # arrival order, as simulate inserts them
                add = np.concatenate([p[0] for p in parts])
                within = np.concatenate([p[1] for p in parts])
                order = np.lexsort((np.arange(add.size), within, add))
                cols = [np.concatenate([p[2][c] for p in parts])[order].tolist()
                        for c in range(len(sp_cols))]
                counts["path_events"] += b.executemany(conn, None, sim.SPATH.name, sp_cols,
                                                       list(zip(*cols, strict=True)))
    finally:
        db.dispose()
    return counts


# -- child processes -----------------------------------------------------------------------
class Runner:
    """Runs ``ot`` as whole processes with the pair's URLs and the statement timer."""

    def __init__(self, tmp: Path, src_url: str, wh_url: str):
        self.stmt_log = tmp / "statements.tsv"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OT_")}
        self.env.update(OT_SOURCE_URL=src_url, OT_WAREHOUSE_URL=wh_url,
                        OT_DATA_DIR=str(tmp / "data"), OT_RUNS_DIR=str(tmp / "runs"),
                        OT_BENCH_STMT_LOG=str(self.stmt_log),
                        PYTHONPATH=os.pathsep.join(
                            [str(ROOT / "bench" / "stmt_timer"), str(ROOT),
                             os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))

    def run(self, label: str, args: list[str], check: bool = True,
            rss: bool = False) -> tuple[float, subprocess.CompletedProcess, int | None]:
        env = dict(self.env, OT_BENCH_JOB=label)
        cmd = (["/usr/bin/time", "-v"] if rss else []) + OT + args
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        if check and proc.returncode != 0:
            raise RuntimeError(f"{label}: `ot {' '.join(args)}` exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
        peak = None
        if rss:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
            peak = int(m.group(1)) if m else None
        return wall, proc, peak


def last_json(text: str) -> dict:
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}


# -- what the warehouse holds --------------------------------------------------------------
def mart_sizes(wh_url: str) -> dict[str, dict[str, int]]:
    """Rows and bytes of every mart and history table (PostgreSQL: the relation with its
    indexes and TOAST; DuckDB: its distinct storage blocks times the block size)."""
    from ot_core.pipeline.periods import discover

    cfg = load_config()
    wh = open_database("warehouse", wh_url)
    out: dict[str, dict[str, int]] = {}
    try:
        with wh.engine.connect() as conn:
            tables = [(names(cfg, wh.backend, t).mart_table, names(cfg, wh.backend, t).mart)
                      for t in cfg.tables]
            tables += [(h.name, wh.backend.qualified(cfg.schemas.mart, h.name))
                       for hs in discover(conn, cfg, wh.backend).values() for h in hs]
            for short, qualified in tables:
                rows = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {qualified}")).scalar())
                out[short] = {"rows": rows, "bytes": _bytes(conn, wh.backend.name, qualified)}
    finally:
        wh.dispose()
    return out


def _bytes(conn: sa.Connection, backend: str, qualified: str) -> int:
    # ``qualified`` is built by the backend from the config's validated names
    if backend == "postgresql":
        return int(conn.execute(sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                                {"t": qualified}).scalar())
    if backend == "duckdb":
        block = int(conn.execute(sa.text(
            "SELECT block_size FROM pragma_database_size()")).scalar())
        blocks = conn.execute(sa.text(
            f"SELECT COUNT(DISTINCT block_id) FROM pragma_storage_info('{qualified}') "
            "WHERE block_id >= 0")).scalar()
        return int(blocks or 0) * block
    return -1


def seq_scans(wh_url: str) -> dict[str, tuple[int, int]]:
    """PostgreSQL's own count of sequential scans of each mart and the rows they read (a
    steady cycle whose cost is ∝ batch reads the marts by index: these stay put). Other
    warehouses keep no such count: empty."""
    wh = open_database("warehouse", wh_url)
    try:
        if wh.backend.name != "postgresql":
            return {}
        cfg = load_config()
        with wh.engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
            rows = conn.execute(sa.text(
                "SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables "
                "WHERE schemaname = :s AND relname LIKE 'mart%'"), {"s": cfg.schemas.mart})
            return {r[0]: (int(r[1]), int(r[2])) for r in rows}
    finally:
        wh.dispose()


# -- the run of one pair -------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 20 values is the largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def run_pair(pair: str, args, scratch: Scratch, end: int) -> dict:
    src_kind, wh_kind = PAIRS[pair]
    tag = f"scale_{pair}"
    src_url, wh_url = scratch.source(src_kind, tag), scratch.warehouse(wh_kind, tag)
    tmp = scratch.tmp / pair
    tmp.mkdir()
    out: dict = {"pair": f"{src_kind} -> {wh_kind}", "scale": args.scale}
    scaled = max(1, round(PRODUCTION_PER_DAY * args.scale))
    origin = end - HISTORY_DAYS * DAY
    say(f"[{pair}] source: {HISTORY_DAYS} days at {scaled} orders/day into {src_kind}")
    t = time.perf_counter()
    out["history"] = write_source(src_url, args.seed, scaled, origin, origin, end)
    out["history"]["seconds"] = round(time.perf_counter() - t, 1)
    say(f"[{pair}] source written: {out['history']}")

    runner = Runner(tmp, src_url, wh_url)
    wall, proc, peak = runner.run("backfill", ["cycle", "--as-of", iso(from_epoch(end)),
                                               "--json"], rss=True)
    res = last_json(proc.stdout)
    rows = sum(int(t.get("rows_extracted") or 0) for t in res.get("tables", {}).values())
    out["backfill"] = {"rows": rows, "process_s": round(wall, 1),
                       "rows_per_s": int(rows / wall), "peak_rss_mib": round((peak or 0) / 1024),
                       "in_process_s": res.get("seconds"),
                       "per_table": {t: {k: v.get(k) for k in ("rows_extracted", "seconds",
                                                                "extract_seconds", "land_seconds",
                                                                "merge_seconds") if k in v}
                                     for t, v in res.get("tables", {}).items()}}
    say(f"[{pair}] backfill: {out['backfill']}")
    out["marts_before_cycles"] = mart_sizes(wh_url)
    say(f"[{pair}] marts: {out['marts_before_cycles']}")

    time.sleep(1)  # statistics reach the shared counters within a second
    scans_before = seq_scans(wh_url)
    cycles, batches, warehouse_s, loads = [], [], [], []
    lo = end
    for i in range(args.cycles):
        hist = write_source(src_url, args.seed, scaled, origin, lo, lo + WINDOW)
        stream = write_stream(src_url, args.seed, end - STREAM_DAYS * DAY, lo, lo + WINDOW)
        written = {k: hist[k] + stream[k] for k in hist}
        lo += WINDOW
        mark = runner.stmt_log.stat().st_size if runner.stmt_log.exists() else 0
        wall, proc, _ = runner.run("cycle", ["run", "cycle", "-p", "as_of", iso(from_epoch(lo)),
                                             "-p", "scheduled", "true", "--json"])
        cycles.append(wall)
        batches.append(written)
        in_wh = statement_seconds(runner.stmt_log, mark, wh_kind)
        warehouse_s.append(in_wh)
        loads.append(os.getloadavg()[0])
        say(f"[{pair}] cycle {i + 1}/{args.cycles}: {wall:.2f} s ({in_wh:.2f} s in warehouse "
            f"statements, load {loads[-1]:.1f}), batch {written}")
    out["cycle_s"] = {"p50": round(statistics.median(cycles), 2), "p99": round(pct(cycles, 0.99), 2),
                      "max": round(max(cycles), 2), "min": round(min(cycles), 2), "n": len(cycles),
                      "all": [round(c, 2) for c in cycles],
                      "warehouse_statements": [round(c, 2) for c in warehouse_s],
                      "load_1min": [round(x, 1) for x in loads]}
    out["batch_rows"] = {k: round(statistics.mean(b[k] for b in batches))
                         for k in batches[0]}
    time.sleep(1)
    scans_after = seq_scans(wh_url)
    out["mart_seq_scans_in_cycles"] = {
        t: {"scans": scans_after[t][0] - scans_before.get(t, (0, 0))[0],
            "rows_read": scans_after[t][1] - scans_before.get(t, (0, 0))[1]}
        for t in scans_after}

    catalogue = load_catalogue()
    month = iso(from_epoch(end - 45 * DAY))[:7]
    jobs = [("rotate_periods", ["-p", "as_of", iso(from_epoch(lo))]),
            ("daily_monitoring", ["-p", "as_of", iso(from_epoch(lo))]),
            ("maintenance", []),
            ("monthly_compare", ["-p", "month", month])]
    out["jobs"] = {}
    for job, params in jobs:
        wall, proc, _ = runner.run(job, ["run", job, *params, "--json"], check=False)
        timeout = catalogue.job(job).timeout_seconds
        status = last_json(proc.stdout).get("status", f"exit {proc.returncode}")
        out["jobs"][job] = {"wall_s": round(wall, 1), "timeout_s": timeout,
                            "share_of_timeout": round(wall / timeout, 4), "status": status,
                            "exit": proc.returncode}
        say(f"[{pair}] {job}: {out['jobs'][job]}")
    out["monthly_compare_month"] = month

    out["marts_after"] = mart_sizes(wh_url)
    out["compare"] = {}
    for table in COMPARE_TABLES:
        wall, proc, _ = runner.run("compare", ["compare", "--table", table, "--json"], check=False)
        res = last_json(proc.stdout)
        out["compare"][table] = {
            "exit": proc.returncode, "seconds": round(wall, 1),
            "rows_source": res.get("rows_source"), "rows_target": res.get("rows_target"),
            "wrong": res.get("wrong"),
            "keys": {k: len(v) for k, v in (res.get("keys") or {}).items() if v}}
        say(f"[{pair}] compare {table}: exit {proc.returncode} in {wall:.1f} s")
    out["slowest_statements"] = slowest(runner.stmt_log, wh_kind, args.top)
    return out


def statement_seconds(path: Path, offset: int, backend: str) -> float:
    """Seconds spent in ``backend``'s statements logged after byte ``offset``."""
    if not path.exists():
        return 0.0
    with path.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode("utf-8").splitlines()
    return sum(float(ln.split("\t")[2]) for ln in lines if ln.split("\t")[1] == backend)


def slowest(path: Path, backend: str, top: int) -> list[dict]:
    """The warehouse statements that took longest, per job, with how often they ran."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        job, engine, seconds, head = line.split("\t", 3)
        if engine == backend:
            rows.append((float(seconds), job, head))
    rows.sort(reverse=True)
    return [{"s": round(s, 3), "job": j, "statement": h[:120]} for s, j, h in rows[:top]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=0.01,
                   help="fraction of production (200K orders a day, six months of marts)")
    p.add_argument("--pairs", default="embedded,servers",
                   help="embedded (SQLite -> DuckDB), servers (MariaDB -> PostgreSQL)")
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--top", type=int, default=12, help="how many slowest statements to show")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--quick", action="store_true",
                   help="1/1000, 3 cycles, both pairs (a few minutes): exits 1 when a check fails")
    p.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = p.parse_args(argv)
    if args.quick:
        args.scale, args.cycles = 0.001, 3
    now = to_epoch(utcnow())
    # history ends at a midnight far enough back that every cycle's instant is in the past
    end = (now - (args.cycles + 4) * WINDOW) // DAY * DAY
    report: dict = {"args": vars(args), "history_end": iso(from_epoch(end)),
                    "load_before": os.getloadavg(), "cores": os.cpu_count(), "pairs": {}}
    scratch = Scratch(Path(tempfile.mkdtemp(prefix="ot_scale_")))
    try:
        for pair in args.pairs.split(","):
            report["pairs"][pair] = run_pair(pair, args, scratch, end)
            if args.json:
                Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    finally:
        if args.keep:
            say(f"kept: {scratch.tmp}, PostgreSQL {scratch.pg}, MariaDB {scratch.mysql}")
        else:
            scratch.drop()
    report["load_after"] = os.getloadavg()
    report["failed_checks"] = failed = checks(report)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    for line in failed:
        say(f"CHECK FAILED: {line}")
    return 1 if failed else 0


def checks(report: dict) -> list[str]:
    """What must hold whatever the machine's speed: every key equal to the source
    (``ot compare``), every job succeeded, and the steady cycles read the marts by index
    (on PostgreSQL, rows read by sequential scans of the marts during the cycles at most the
    rows the cycles were given: a merge scanning a mart reads the whole mart each time)."""
    failed = []
    for pair, out in report["pairs"].items():
        for table, res in out["compare"].items():
            if res["exit"] != 0 or res["wrong"]:
                failed.append(f"{pair}: ot compare --table {table} exit {res['exit']}, "
                              f"{res['wrong']} rows wrong ({res['keys']})")
        for job, res in out["jobs"].items():
            if res["exit"] != 0:
                failed.append(f"{pair}: ot run {job} exit {res['exit']} ({res['status']})")
        given = sum(out["batch_rows"].values()) * out["cycle_s"]["n"]
        for table, scan in out.get("mart_seq_scans_in_cycles", {}).items():
            if scan["rows_read"] > given:
                failed.append(f"{pair}: the steady cycles read {scan['rows_read']} rows of "
                              f"{table} by sequential scans ({scan['scans']} scans), more "
                              f"than the {given} rows they were given")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())

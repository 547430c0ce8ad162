"""Benchmark: the steady-state cycle on a large mart, and the initial backfill.

Prints figures; asserts nothing about wall time (a shared machine's timings are evidence,
not pass/fail). What it measures:

1. Steady state. The warehouse marts are seeded directly with bulk SQL that generates the
   rows inside DuckDB / PostgreSQL (``range()`` / ``generate_series()``), one merged seed
   batch per table is recorded and the watermarks are set to the seed's end, so a cycle
   reads only the delta. Then, per run, one 15-minute window of new source rows (new
   orders, tracking updates of existing orders, path events) is written to the source
   (untimed) and the real ``ot_core.pipeline.cycle.run_cycle`` is timed. Median of ``--runs``.
   Then the mart is doubled (as many orders again, interleaved in time) and the same is
   timed again. With ``lifecycle.enabled`` off and on, alternating cycle by cycle.
2. Backfill. A MariaDB source is seeded with bulk SQL (the Sequence engine), and a child
   process runs the first cycle into an empty warehouse: rows/s and the child's peak RSS,
   per warehouse and per source reader (pymysql, connectorx).

    .venv/bin/python bench/cycle.py --quick
    .venv/bin/python bench/cycle.py --orders 1000000 --events-per-order 10 --runs 5 \\
        --backends duckdb,postgres
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cycle_seed import (  # noqa: E402
    SeedPlan,
    seed_crossing_band,
    seed_marts,
    seed_mysql_source,
    write_delta,
)
from ot_core.config import PipelineConfig, load_config  # noqa: E402
from ot_core.db.connect import Database, open_database  # noqa: E402
from ot_core.db.schema import ensure, names  # noqa: E402
from ot_core.jobs.maintenance import run_maintenance  # noqa: E402
from ot_core.pipeline.control import MERGED, Control  # noqa: E402
from ot_core.pipeline.cycle import run_cycle  # noqa: E402
from ot_core.pipeline.periods import cutoff  # noqa: E402
from ot_core.simulate import ensure_source  # noqa: E402
from ot_core.timeutil import from_epoch, parse_as_of, to_epoch  # noqa: E402

PG_ADMIN = os.environ.get("OT_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN = os.environ.get("OT_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
T0 = to_epoch(parse_as_of("2026-07-15T00:00:00Z"))  # the seeded marts end here
SPAN = 182 * 86400  # the seeded marts cover the half year before T0
WINDOW = 900  # one 15-minute cycle


# -- throwaway databases -------------------------------------------------------------------
@dataclass
class Scratch:
    """Databases and files this run created, dropped at the end."""

    tmp: Path
    pg: list[str] = field(default_factory=list)
    mysql: list[str] = field(default_factory=list)

    def warehouse(self, kind: str, tag: str) -> str:
        if kind == "duckdb":
            return f"duckdb:///{self.tmp / f'{tag}.duckdb'}"
        name = f"ot_bench_{tag}_{uuid.uuid4().hex[:8]}"
        _admin(PG_ADMIN, f"CREATE DATABASE {name}")
        self.pg.append(name)
        return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

    def source(self, kind: str, tag: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.tmp / f'{tag}.sqlite'}"
        name = f"ot_bench_{tag}_{uuid.uuid4().hex[:8]}"
        _admin(MYSQL_ADMIN, f"CREATE DATABASE {name}")
        self.mysql.append(name)
        return sa.engine.make_url(MYSQL_ADMIN).set(database=name).render_as_string(hide_password=False)

    def drop(self) -> None:
        for name in self.pg:
            _admin(PG_ADMIN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        for name in self.mysql:
            _admin(MYSQL_ADMIN, f"DROP DATABASE IF EXISTS {name}")
        shutil.rmtree(self.tmp, ignore_errors=True)


def _admin(url: str, statement: str) -> None:
    # Bench-only DDL on names this script generated (ot_bench_<tag>_<hex>), no user input.
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            c.exec_driver_sql(statement)
    finally:
        eng.dispose()


def _with_lifecycle(cfg: PipelineConfig, enabled: bool) -> PipelineConfig:
    return cfg.model_copy(update={"lifecycle": cfg.lifecycle.model_copy(update={"enabled": enabled})})


# -- steady state --------------------------------------------------------------------------
def _record_seed(wh: Database, cfg: PipelineConfig, plan: SeedPlan) -> None:
    """One merged batch per table covering the seeded rows, and watermarks at T0."""
    control = Control.for_config(cfg, wh.backend)
    now = from_epoch(T0).replace(tzinfo=None)
    with wh.engine.begin() as conn:
        for i, table in enumerate(cfg.tables, start=1):
            top = plan.max_raw_id(table)
            conn.execute(sa.delete(control.batches).where(control.batches.c.batch_id == i))
            control.record_batch(
                conn, batch_id=i, table_name=table, strategy="timestamp", as_of=T0,
                lower_bound=None, upper_bound=T0, raw_id_min=1, raw_id_max=top,
                rows_extracted=top, rows_loaded=top, rows_merged=top, status=MERGED,
                loaded_at=now, merged_at=now)
            control.set_watermark(conn, table, T0, i, now)


def _analyze(wh: Database, cfg: PipelineConfig) -> None:
    if wh.backend.name != "postgresql":
        return
    with wh.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in cfg.tables:
            conn.exec_driver_sql(f"VACUUM ANALYZE {names(cfg, wh.backend, table).mart}")


def _mart_rows(wh: Database, cfg: PipelineConfig) -> dict[str, int]:
    with wh.engine.connect() as conn:
        return {t: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {names(cfg, wh.backend, t).mart}")).scalar())
                for t in cfg.tables}


def _seed_band(wh: Database, cfg: PipelineConfig, args, out: dict, first: int, count: int = 0,
               key_offset: int = 0) -> None:
    """With ``--production-crossing``: rows crossing the cutoff at the deltas' rate in the
    window of every timed lifecycle cycle (cycle ``first``, ``first + 2``, ...; see
    seed_crossing_band), so each moves what a steady state at that rate would. Without it
    the rows crossing are the seed's own: the 1M-order mart's density."""
    if not (args.lifecycle and args.production_crossing):
        return
    seed_crossing_band(wh, cfg, cutoff(T0, cfg.retention_months), first, count or args.runs,
                       args.delta_orders, args.delta_events, key_offset)
    out["crossing_per_lifecycle_cycle"] = {
        "orders": args.delta_orders, "tracking": args.delta_orders,
        "path_events": args.delta_events}


def _history_rows(wh: Database, cfg: PipelineConfig) -> dict[str, int]:
    from ot_core.pipeline.periods import discover

    with wh.engine.connect() as conn:
        hists = discover(conn, cfg, wh.backend)
        return {h.name: int(conn.execute(sa.text(
            f"SELECT COUNT(*) FROM {wh.backend.qualified(cfg.schemas.mart, h.name)}")).scalar())
            for hs in hists.values() for h in hs}


class Steady:
    """Runs timed cycles, one new window each, on one warehouse + source."""

    def __init__(self, cfg: PipelineConfig, wh: Database, src: Database, plan: SeedPlan,
                 delta: dict[str, int]):
        self.cfg, self.wh, self.src, self.plan, self.delta = cfg, wh, src, plan, delta
        self.window = 0

    def cycles(self, runs: int, lifecycle: bool, profiler=None) -> tuple[list[float], list]:
        cfg = _with_lifecycle(self.cfg, lifecycle)
        times, results = [], []
        for _ in range(runs):
            lo = T0 + self.window * WINDOW
            write_delta(self.src, self.plan, self.window, lo, lo + WINDOW, **self.delta)
            if profiler:
                profiler.enable()
            t = time.perf_counter()
            res = run_cycle(from_epoch(lo + WINDOW), config=cfg, source=self.src, warehouse=self.wh)
            times.append(time.perf_counter() - t)
            if profiler:
                profiler.disable()
            results.append(res)
            self.window += 1
        return times, results


def steady_state(kind: str, args, scratch: Scratch, cfg: PipelineConfig, report: dict) -> None:
    out = report.setdefault("steady", {}).setdefault(kind, {})
    wh = open_database("warehouse", scratch.warehouse(kind, "steady"))
    src = open_database("source", scratch.source(args.source, f"delta_{kind}"))
    ensure_source(src)  # the contract's source tables
    with wh.engine.begin() as conn:
        ensure(conn, cfg, wh.backend)
    plan = SeedPlan(orders=args.orders, events_per_order=args.events_per_order, t0=T0, span=SPAN)
    t = time.perf_counter()
    seed_marts(wh, cfg, plan, part=0)
    _seed_band(wh, cfg, args, out, first=3)  # warm-up 0, first lifecycle 1, then off/on
    _record_seed(wh, cfg, plan)
    _analyze(wh, cfg)
    out["seed_seconds"] = round(time.perf_counter() - t, 1)
    out["mart_rows"] = _mart_rows(wh, cfg)
    _say(f"[{kind}] seeded {out['mart_rows']} in {out['seed_seconds']}s")
    delta = {"new_orders": args.delta_orders, "updates": args.delta_updates,
             "events": args.delta_events}
    bench = Steady(cfg, wh, src, plan, delta)
    bench.cycles(1, lifecycle=False)  # warm-up: first connections, catalog caches
    if not args.lifecycle:
        times, results = bench.cycles(args.runs, lifecycle=False)
        out["cycle_s"] = _summary(times)
    else:
        # The first lifecycle cycle creates the history tables and archives the seed's backlog
        # (a catch-up, reported apart). Then cycles alternate off / on, so both medians see the
        # same machine and the same checkpoint rhythm; each "on" cycle archives the two windows
        # that crossed the cutoff since the previous one, so the share is, if anything, high.
        _, first = bench.cycles(1, lifecycle=True)
        out["first_lifecycle_cycle"] = _jsonable(first[0].lifecycle)
        times, on_times, on_seconds = [], [], []
        for _ in range(args.runs):
            t_off, results = bench.cycles(1, lifecycle=False)
            t_on, on = bench.cycles(1, lifecycle=True)
            times += t_off
            on_times += t_on
            on_seconds.append(on[0].lifecycle["seconds"])
        out["cycle_s"] = _summary(times)
        out["lifecycle_on_cycle_s"] = _summary(on_times)
        out["lifecycle_seconds"] = _summary(on_seconds)
        out["lifecycle_result"] = _jsonable(on[0].lifecycle)
        out["lifecycle_share"] = round(out["lifecycle_on_cycle_s"]["median"] / out["cycle_s"]["median"] - 1, 3)
        _say(f"[{kind}] lifecycle on: {out['lifecycle_on_cycle_s']}; its own time "
             f"{out['lifecycle_seconds']}; adds {out['lifecycle_share']:.0%} to the median cycle")
    out["rows_merged_per_cycle"] = {t: r.rows_merged for t, r in results[-1].tables.items()}
    _say(f"[{kind}] steady cycle: {out['cycle_s']}")
    if args.double:
        t = time.perf_counter()
        seed_marts(wh, cfg, plan, part=1)
        plan.parts = 2
        _record_seed(wh, cfg, plan)
        _analyze(wh, cfg)
        out["double_seed_seconds"] = round(time.perf_counter() - t, 1)
        out["double_mart_rows"] = _mart_rows(wh, cfg)
        bench.cycles(1, lifecycle=False)
        times2, _ = bench.cycles(args.runs, lifecycle=False)
        out["double_cycle_s"] = _summary(times2)
        out["double_ratio"] = round(out["double_cycle_s"]["median"] / out["cycle_s"]["median"], 2)
        _say(f"[{kind}] doubled mart {out['double_mart_rows']}: {out['double_cycle_s']} "
             f"ratio {out['double_ratio']}")
    if args.profile:
        out["profile"] = _profile(bench, lifecycle=False)
        if args.lifecycle:  # one more window crossing, for the profiled cycle
            _seed_band(wh, cfg, args, {}, first=bench.window, count=1, key_offset=10**8)
            out["profile_lifecycle_on"] = _profile(bench, lifecycle=True)
    src.dispose()
    wh.dispose()
    if args.lifecycle:
        first_archive(kind, args, scratch, cfg, out)


def first_archive(kind: str, args, scratch: Scratch, cfg: PipelineConfig, out: dict) -> None:
    """The first lifecycle cycle over marts holding a whole half-year past retention.

    The seed covers [2025-07-01, T0): all of 2025 H2 is older than six months at T0, so
    this cycle archives it (and whatever else the lifecycle's rules select).
    """
    wh = open_database("warehouse", scratch.warehouse(kind, "archive"))
    src = open_database("source", scratch.source(args.source, f"archive_{kind}"))
    ensure_source(src)  # the contract's source tables
    with wh.engine.begin() as conn:
        ensure(conn, cfg, wh.backend)
    span = T0 - to_epoch(parse_as_of("2025-07-01T00:00:00Z"))
    plan = SeedPlan(orders=args.orders, events_per_order=args.events_per_order, t0=T0, span=span)
    seed_marts(wh, cfg, plan, part=0)
    _seed_band(wh, cfg, args, out.setdefault("first_archive", {}), first=2)  # archive 0, off/on
    _record_seed(wh, cfg, plan)
    _analyze(wh, cfg)
    before = _mart_rows(wh, cfg)
    delta = {"new_orders": args.delta_orders, "updates": args.delta_updates,
             "events": args.delta_events}
    bench = Steady(cfg, wh, src, plan, delta)
    times, results = bench.cycles(1, lifecycle=True)
    out["first_archive"] |= {"mart_rows_before": before, "mart_rows_after": _mart_rows(wh, cfg),
                            "cycle_s": round(times[0], 2),
                            "lifecycle": _jsonable(results[0].lifecycle)}
    _say(f"[{kind}] first archive of a half-year: {out['first_archive']}")
    # The daily maintenance job, as it would run after this bulk move (on PostgreSQL it
    # vacuums the marts the archive left half dead; DuckDB checkpoints).
    t = time.perf_counter()
    plan_ = run_maintenance(config=cfg, warehouse=wh)
    out["first_archive"]["maintenance"] = {
        "seconds": round(time.perf_counter() - t, 1),
        "actions": [f"{d.table}: {d.action}" for d in plan_.decisions if d.action != "skip"]}
    # The steady state again, now with a half-year in history: the lifecycle's probes must
    # still follow the rows crossing the cutoff, not the size of the history tables.
    off, on = [], []
    for _ in range(args.runs):
        off += bench.cycles(1, lifecycle=False)[0]
        on += bench.cycles(1, lifecycle=True)[0]
    after = out["first_archive"]["steady_after"] = {
        "history_rows": _history_rows(wh, cfg), "cycle_s": _summary(off),
        "lifecycle_on_cycle_s": _summary(on),
        "lifecycle_share": round(statistics.median(on) / statistics.median(off) - 1, 3)}
    _say(f"[{kind}] steady state with a half-year in history: {after}")
    if args.profile:
        _seed_band(wh, cfg, args, {}, first=bench.window, count=1, key_offset=10**8)
        after["profile_lifecycle_on"] = _profile(bench, lifecycle=True)
    src.dispose()
    wh.dispose()


def _profile(bench: Steady, lifecycle: bool) -> dict:
    """Where one steady cycle's time goes: per warehouse statement, and cProfile's top."""
    import cProfile
    import io
    import pstats
    from collections import defaultdict

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    started: list[float] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        started.append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        head = " ".join(statement.split())[:90]
        spent[head] += time.perf_counter() - started.pop()
        calls[head] += 1

    sa.event.listen(bench.wh.engine, "before_cursor_execute", before)
    sa.event.listen(bench.wh.engine, "after_cursor_execute", after)
    prof = cProfile.Profile()
    try:
        times, _ = bench.cycles(1, lifecycle=lifecycle, profiler=prof)
    finally:
        sa.event.remove(bench.wh.engine, "before_cursor_execute", before)
        sa.event.remove(bench.wh.engine, "after_cursor_execute", after)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    top = sorted(spent.items(), key=lambda kv: -kv[1])[:25]
    return {"cycle_s": round(times[0], 3), "statements": sum(calls.values()),
            "statements_s": round(sum(spent.values()), 3),
            "warehouse_statements_s": {f"{calls[k]}x {k}": round(v, 3) for k, v in top},
            "cprofile_tottime": buf.getvalue()}


# -- backfill ------------------------------------------------------------------------------
def backfill(args, scratch: Scratch, report: dict) -> None:
    out = report.setdefault("backfill", {})
    src_url = scratch.source("mysql", "backfill")
    t = time.perf_counter()
    rows = seed_mysql_source(src_url, args.backfill_orders, args.events_per_order, T0, SPAN)
    out["source_rows"] = rows
    out["seed_seconds"] = round(time.perf_counter() - t, 1)
    _say(f"[backfill] MariaDB seeded {rows} in {out['seed_seconds']}s")
    readers = [r for r in args.readers.split(",") if r]
    for kind in args.backends.split(","):
        for reader in readers:
            if reader == "connectorx" and importlib.util.find_spec("connectorx") is None:
                out[f"{kind}/{reader}"] = "connectorx not installed"
                continue
            wh_url = scratch.warehouse(kind, f"backfill_{reader}")
            env = dict(os.environ, OT_SOURCE_READER=reader)
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--backfill-child", src_url, wh_url],
                env=env, capture_output=True, text=True, check=False)
            process_s = time.perf_counter() - started
            if proc.returncode != 0:
                out[f"{kind}/{reader}"] = "failed: " + proc.stderr.strip().splitlines()[-1]
            else:
                fig = json.loads(proc.stdout.strip().splitlines()[-1])
                # the whole child process: interpreter start, imports, cycle, exit
                fig["process_s"] = round(process_s, 1)
                fig["process_rows_per_s"] = int(fig["rows"] / process_s)
                out[f"{kind}/{reader}"] = fig
            _say(f"[backfill] {kind} via {reader}: {out[f'{kind}/{reader}']}")


def backfill_child(src_url: str, wh_url: str) -> None:
    """The first cycle into an empty warehouse, in its own process so RSS is its own."""
    cfg = load_config()
    t = time.perf_counter()
    res = run_cycle(from_epoch(T0), config=cfg, source=src_url, warehouse=wh_url)
    seconds = time.perf_counter() - t
    rows = sum(r.rows_extracted for r in res.tables.values())
    print(json.dumps({
        "reader": os.environ.get("OT_SOURCE_READER", "connectorx"), "rows": rows, "seconds": round(seconds, 1),
        "rows_per_s": int(rows / seconds), "chunk_rows": cfg.cycle.chunk_rows,
        "per_table_s": {t: round(r.seconds, 1) for t, r in res.tables.items()},
        "peak_rss_mib": _peak_rss_mib(),
    }))


def _peak_rss_mib() -> int:
    """This process's RSS high-water mark (VmHWM). Unlike getrusage's ru_maxrss, which Linux
    carries over from the forking parent across exec, it counts this program alone."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# -- reporting -----------------------------------------------------------------------------
def _summary(times: list[float]) -> dict:
    return {"median": round(statistics.median(times), 3), "min": round(min(times), 3),
            "max": round(max(times), 3), "runs": len(times)}


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--events-per-order", type=int, default=10)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--backends", default="duckdb,postgres")
    p.add_argument("--source", choices=("sqlite", "mysql"), default="mysql",
                   help="where the steady-state delta is written (default MariaDB)")
    p.add_argument("--delta-orders", type=int, default=2_000)
    p.add_argument("--delta-updates", type=int, default=10_000)
    p.add_argument("--delta-events", type=int, default=20_000)
    p.add_argument("--backfill-orders", type=int, default=200_000)
    p.add_argument("--readers", default="pymysql,connectorx")
    p.add_argument("--no-backfill", dest="backfill", action="store_false")
    p.add_argument("--no-steady", dest="steady", action="store_false",
                   help="only the backfill")
    p.add_argument("--no-double", dest="double", action="store_false")
    p.add_argument("--no-lifecycle", dest="lifecycle", action="store_false")
    p.add_argument("--profile", action="store_true", help="cProfile one extra steady cycle")
    p.add_argument("--production-crossing", action="store_true",
                   help="rows cross the cutoff at the deltas' rate (2K orders, 20K path events "
                        "per lifecycle cycle) instead of the seeded mart's own density")
    p.add_argument("--quick", action="store_true", help="20K orders, 2 runs, 5K backfill orders, deltas / 4")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch databases and files for inspection (prints where)")
    p.add_argument("--backfill-child", nargs=2, metavar=("SOURCE_URL", "WAREHOUSE_URL"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.backfill_child:
        backfill_child(*args.backfill_child)
        return 0
    if args.quick:  # a smoke run of every phase, well under a minute on an idle machine
        args.orders, args.runs, args.backfill_orders = 20_000, 2, 5_000
        args.delta_orders, args.delta_updates, args.delta_events = 500, 2_500, 5_000
    args.backends = args.backends.replace("postgres,", "postgresql,").replace(
        "postgres", "postgresql").replace("postgresqlql", "postgresql")
    cfg = load_config()
    report: dict = {"args": {k: v for k, v in vars(args).items() if k != "backfill_child"},
                    "load_before": os.getloadavg()}
    scratch = Scratch(Path(tempfile.mkdtemp(prefix="ot_bench_")))
    try:
        for kind in args.backends.split(",") if args.steady else []:
            steady_state(kind, args, scratch, cfg, report)
        if args.backfill:
            backfill(args, scratch, report)
    finally:
        if args.keep:
            _say(f"kept: {scratch.tmp}, PostgreSQL {scratch.pg}, MariaDB {scratch.mysql}")
        else:
            scratch.drop()
    report["load_after"] = os.getloadavg()
    text = json.dumps({k: v for k, v in report.items()}, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

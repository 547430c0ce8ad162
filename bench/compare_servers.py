"""``ot compare --table uts`` on MariaDB → PostgreSQL, side by side with bare scans of both
sides and reladiff; and where a checksum query's time goes on each engine. Prints figures;
asserts nothing about time.

    nice -n 10 .venv/bin/python bench/compare_servers.py \\
        --source-url mysql+pymysql://root@127.0.0.1:3306/SRC \\
        --warehouse-url postgresql+psycopg2://postgres@127.0.0.1:5432/WH --runs 3 --breakdown

The pair is one the pipeline filled (``bench/scale.py --scale 0.1 --pairs servers --keep``
prints the URLs of the databases it keeps); ``--scale`` builds a throwaway pair instead with
scale.py's own helpers (source history, then the backfill ``ot cycle``), dropped at the end
unless ``--keep``.

1. Differences are injected into the warehouse's mart, reversibly: ``--changed`` path events
   get another ``path_info``, ``--deleted`` are deleted, spread over the key range. The
   original rows are saved first (``<work>/saved_rows.json``) and put back at the end, on
   error paths too (``--restore FILE`` puts back what an interrupted run saved).
2. Per run, each timed as a whole: ``ot compare --table uts --json`` (a process; the result it
   keeps in the warehouse is read to check the keys found are exactly the injected ones, then
   deleted); a bare scan of each side (``COUNT(*)`` and two sums, in its own engine, over the
   relations the compare reads); ``reladiff -j 2`` of every column (a process, from
   ``--reladiff``, a separate venv: reladiff pins its own driver versions).
3. ``--breakdown``: per engine, the same relations read by ever more of the checksum: bare
   scan; + the canonical text of each row; + its MD5; + the 28-bit integer; the whole
   first-level segment query; and PostgreSQL's plan of that query.
4. ``--month YYYY-MM``: ``ot compare --table T --month YYYY-MM`` of the three tables (what the
   monthly job runs), per build, on the restored warehouse.
Medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ot_core.config import load_config  # noqa: E402
from ot_core.contract import CONTRACTS  # noqa: E402
from ot_core.db.catalog import history_tables  # noqa: E402
from ot_core.db.connect import open_database  # noqa: E402
from ot_core.db.schema import mart_name, tables_for  # noqa: E402
from ot_core.quality.compare.bisect import first_width  # noqa: E402
from ot_core.quality.compare.sides import Settings  # noqa: E402

TABLE = "uni_tracking_spath"
OT = [sys.executable, "-m", "ot_core"]


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class Pair:
    """The two databases, the mart and the relations each side of a compare reads."""

    def __init__(self, src_url: str, wh_url: str, work: Path):
        self.src_url, self.wh_url, self.work = src_url, wh_url, work
        self.cfg = load_config()
        self.src = open_database("source", src_url, create=False)
        self.wh = open_database("warehouse", wh_url, create=False)
        self.schema = self.cfg.schemas.mart
        self.mart = self.wh.backend.qualified(self.schema, mart_name(TABLE))
        with self.wh.engine.connect() as c:
            hist = history_tables(c, self.cfg, self.wh.backend, TABLE)
        self.wh_rels = [self.mart] + [self.wh.backend.qualified(self.schema, h.name)
                                      for h in hist]
        self.src_rels = [self.src.backend.qualified(None, TABLE)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OT_")}
        self.env.update(OT_SOURCE_URL=src_url, OT_WAREHOUSE_URL=wh_url,
                        OT_DATA_DIR=str(work / "data"), OT_RUNS_DIR=str(work / "runs"),
                        PYTHONPATH=str(ROOT))


# -- reversible differences in the warehouse ----------------------------------------------
def inject(pair: Pair, changed: int, deleted: int, saved: Path) -> dict[str, list[int]]:
    q = pair.wh.backend.quote
    with pair.wh.engine.begin() as c:
        lo, hi = c.execute(sa.text(f"SELECT MIN(id), MAX(id) FROM {pair.mart}")).one()
        ids: list[int] = []
        step = (hi - lo) // (changed + deleted + 1)
        for i in range(1, changed + deleted + 1):  # the first key at or above each mark
            k = c.execute(sa.text(f"SELECT MIN(id) FROM {pair.mart} WHERE id >= :k"),
                          {"k": lo + i * step}).scalar()
            if k is not None and k not in ids:
                ids.append(int(k))
        rows = [dict(r._mapping) for r in c.execute(
            sa.text(f"SELECT * FROM {pair.mart} WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)), {"ids": ids})]
        saved.write_text(json.dumps({"mart": pair.mart, "rows": rows}, default=str))
        chg, dele = ids[:changed], ids[changed:]
        c.execute(sa.text(f"UPDATE {pair.mart} SET {q('path_info')} = 'changed by the bench' "
                          "WHERE id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                  {"ids": chg})
        c.execute(sa.text(f"DELETE FROM {pair.mart} WHERE id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": dele})
    return {"changed": sorted(chg), "missing": sorted(dele)}


def restore(pair: Pair, saved: Path) -> None:
    """Put the saved rows back as they were (the mart's own column types convert them)."""
    data = json.loads(saved.read_text())
    rows = data["rows"]
    if not rows:
        return
    meta = sa.MetaData()
    mart = sa.Table(mart_name(TABLE), meta, schema=pair.schema, autoload_with=pair.wh.engine)
    with pair.wh.engine.begin() as c:
        c.execute(sa.delete(mart).where(mart.c.id.in_([r["id"] for r in rows])))
        c.execute(sa.insert(mart), [{k: _typed(mart.c[k], v) for k, v in r.items()}
                                    for r in rows])
    with pair.wh.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql(f"VACUUM {pair.mart}")  # the restored rows' dead versions
    saved.unlink()
    say(f"warehouse restored: {len(rows)} rows of {data['mart']}")


def _typed(col: sa.Column, v: object) -> object:
    if v is None or not isinstance(v, str):
        return v
    if isinstance(col.type, sa.DateTime):
        from datetime import datetime

        return datetime.fromisoformat(v)
    if isinstance(col.type, sa.Numeric) and not isinstance(col.type, sa.Float):
        from decimal import Decimal

        return Decimal(v)
    return v


# -- one run ---------------------------------------------------------------------------------
def variants(pair: Pair, a, work: Path) -> dict[str, dict[str, str]]:
    """The builds of ``ot compare`` timed side by side: this checkout; with one connection per
    side (``--one-connection``); another checkout's code (``--baseline DIR``)."""
    out = {"compare": {}}
    if a.one_connection:
        from ot_core.config import DEFAULT_CONFIG

        text = Path(DEFAULT_CONFIG).read_text()
        assert "connections_per_side: 2" in text
        cfg = work / "one_connection.yml"
        cfg.write_text(text.replace("connections_per_side: 2", "connections_per_side: 1"))
        out["compare_one_connection"] = {"OT_CONFIG": str(cfg)}
    if a.baseline:
        out["compare_baseline"] = {"PYTHONPATH": str(Path(a.baseline).resolve())}
    return out


def ot_compare(pair: Pair, expected: dict[str, list[int]],
               extra: dict[str, str]) -> tuple[float, float, bool, dict]:
    t = time.perf_counter()
    p = subprocess.run([*OT, "compare", "--table", "uts", "--json"], env={**pair.env, **extra},
                       capture_output=True, text=True, check=False,
                       cwd=extra.get("PYTHONPATH"))
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):
        sys.exit(f"ot compare failed ({p.returncode}): {p.stderr[-1500:]}")
    rep = json.loads(p.stdout[p.stdout.index("{"):])
    tabs = tables_for(pair.cfg, pair.wh.backend)
    with pair.wh.engine.begin() as c:  # the keys it found, then the kept result removed
        found: dict[str, list[int]] = {}
        for kind, key in c.execute(sa.select(tabs.compare_keys.c.kind, tabs.compare_keys.c.key_value)
                                   .where(tabs.compare_keys.c.run_id == rep["run_id"])):
            found.setdefault(kind, []).append(int(key))
        c.execute(sa.delete(tabs.compare_keys).where(tabs.compare_keys.c.run_id == rep["run_id"]))
        c.execute(sa.delete(tabs.compare_results)
                  .where(tabs.compare_results.c.run_id == rep["run_id"]))
    exact = (sorted(found.get("changed", [])) == expected["changed"]
             and sorted(found.get("missing", [])) == expected["missing"]
             and not found.get("extra") and rep["pending"] == 0 and rep["future"] == 0)
    counts = {k: rep[k] for k in ("missing", "extra", "changed", "pending", "future",
                                  "rows_source", "rows_target", "checksum_queries",
                                  "rows_transferred")}
    return wall, rep["seconds"], exact, counts


def month_runs(pair: Pair, a, work: Path) -> dict:
    """What the monthly job compares: every table over one month (``--month``), per build,
    whole processes; the results they keep are deleted again."""
    builds = variants(pair, a, work)
    fig: dict[str, list[float]] = {}
    tabs = tables_for(pair.cfg, pair.wh.backend)
    for _ in range(a.runs):
        for build_, extra in builds.items():
            total = 0.0
            for table in ("ecs", "uti", "uts"):
                t = time.perf_counter()
                p = subprocess.run([*OT, "compare", "--table", table, "--month", a.month,
                                    "--json"], env={**pair.env, **extra}, capture_output=True,
                                   text=True, check=False, cwd=extra.get("PYTHONPATH"))
                wall = time.perf_counter() - t
                total += wall
                rep = json.loads(p.stdout[p.stdout.index("{"):])
                fig.setdefault(f"{build_} {table}", []).append(wall)
                with pair.wh.engine.begin() as c:
                    for tab in (tabs.compare_keys, tabs.compare_results):
                        c.execute(sa.delete(tab).where(tab.c.run_id == rep["run_id"]))
                say(f"{build_} --month {a.month} {table}: {wall:.1f} s, exit {p.returncode}, "
                    f"rows {rep['rows_source']}/{rep['rows_target']}, wrong "
                    f"{rep['missing'] + rep['extra'] + rep['changed']}")
            fig.setdefault(f"{build_} all tables", []).append(total)
    return {"month": a.month, "median_s": {k: round(statistics.median(v), 2)
                                           for k, v in fig.items()}}


def _scan_sql(rels: list[str], q) -> str:
    return " UNION ALL ".join(f"SELECT COUNT(*) AS n, SUM({q('id')}) AS a, "
                              f"SUM({q('pathTime')}) AS b FROM {r}" for r in rels)


def bare_scans(pair: Pair) -> tuple[float, float]:
    out = []
    for db, rels in ((pair.src, pair.src_rels), (pair.wh, pair.wh_rels)):
        t = time.perf_counter()
        with db.engine.connect() as c:
            c.execute(sa.text(_scan_sql(rels, db.backend.quote))).all()
        out.append(time.perf_counter() - t)
    return out[0], out[1]


def reladiff(pair: Pair, exe: Path) -> tuple[float, int] | None:
    if not exe.exists():
        return None
    cols = [c.name for c in CONTRACTS[TABLE].columns if c.name != "id"]
    src = sa.engine.make_url(pair.src_url).set(drivername="mysql")
    wh = sa.engine.make_url(pair.wh_url).set(drivername="postgresql")
    cmd = [str(exe), src.render_as_string(hide_password=False), TABLE,
           wh.render_as_string(hide_password=False), f"{pair.schema}.{mart_name(TABLE)}",
           "-k", "id", *[x for c in cols for x in ("-c", c)], "-j", "2", "--case-sensitive"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"reladiff failed ({p.returncode}): {p.stderr[-1500:]}")
    return wall, sum(1 for line in p.stdout.splitlines() if line[:2] in ("+ ", "- "))


# -- where a checksum query's time goes --------------------------------------------------------
def breakdown(pair: Pair, runs: int) -> dict:
    cols = CONTRACTS[TABLE].columns
    out: dict = {}
    with pair.wh.engine.connect() as c:
        rows = max(int(c.execute(sa.text(f"SELECT COUNT(*) FROM {r}")).scalar() or 0)
                   for r in pair.wh_rels)
        lo, hi = c.execute(sa.text(f"SELECT MIN(id), MAX(id) FROM {pair.mart}")).one()
    width = first_width(int(hi) + 1 - int(lo), Settings(), rows)
    for side, db, rels in (("source", pair.src, pair.src_rels),
                           ("warehouse", pair.wh, pair.wh_rels)):
        cs, q = db.backend.checksum(), db.backend.quote
        names = ", ".join(q(c.name) for c in cols)
        rel = " UNION ALL ".join(f"SELECT {names} FROM {r}" for r in rels)
        text, h = cs.row_text(cols, "t"), cs.row_hash(cols, "t")
        bucket = cs.intdiv(f"t.{q('id')} - {int(lo)}", str(width))
        steps = {
            "bare scan": f"SELECT COUNT(*), SUM(t.{q('id')}), SUM(t.{q('pathTime')})",
            "+ canonical text": f"SELECT COUNT(*), SUM(LENGTH({text}))",
            "+ md5": f"SELECT COUNT(*), SUM(LENGTH(MD5({text})))",
            "+ 28-bit integer": f"SELECT COUNT(*), SUM({h})",
        }
        figures = {}
        with db.engine.connect() as c:
            for name, head in steps.items():
                figures[name] = _timed(c, f"{head} FROM ({rel}) t", runs)
            seg = f"SELECT {bucket}, COUNT(*), SUM({h}) FROM ({rel}) t GROUP BY 1"
            figures[f"segment query (width {width})"] = _timed(c, seg, runs)
            if db.backend.name == "postgresql":
                plan = c.execute(sa.text(f"EXPLAIN {seg}")).all()
                out["postgresql_plan"] = [r[0] for r in plan]
        out[f"{side} ({db.backend.name})"] = figures
        say(f"{side}: {figures}")
    return out


def _timed(c: sa.Connection, sql: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        c.execute(sa.text(sql)).all()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 2)


# -- a throwaway pair -----------------------------------------------------------------------
def build(scale: float, seed: int, work: Path):
    from bench.cycle import Scratch
    from bench.scale import DAY, HISTORY_DAYS, PRODUCTION_PER_DAY, write_source
    from ot_core.timeutil import from_epoch, iso, to_epoch, utcnow

    scratch = Scratch(work)
    src, wh = scratch.source("mysql", "compare"), scratch.warehouse("postgresql", "compare")
    end = to_epoch(utcnow()) // DAY * DAY - DAY
    per_day = max(1, round(PRODUCTION_PER_DAY * scale))
    say(f"source: {HISTORY_DAYS} days at {per_day} orders/day")
    write_source(src, seed, per_day, end - HISTORY_DAYS * DAY, end - HISTORY_DAYS * DAY, end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_")}
    env.update(OT_SOURCE_URL=src, OT_WAREHOUSE_URL=wh, OT_DATA_DIR=str(work / "data"),
               OT_RUNS_DIR=str(work / "runs"), PYTHONPATH=str(ROOT))
    say("backfill")
    subprocess.run([*OT, "cycle", "--as-of", iso(from_epoch(end)), "--json"], env=env,
                   check=True, capture_output=True)
    return scratch, src, wh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source-url")
    ap.add_argument("--warehouse-url")
    ap.add_argument("--scale", type=float, help="build a throwaway pair at this fraction")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the pair --scale built")
    ap.add_argument("--changed", type=int, default=50)
    ap.add_argument("--deleted", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--breakdown-runs", type=int, default=1)
    ap.add_argument("--no-compare", action="store_true", help="only the breakdown")
    ap.add_argument("--reladiff", default=str(ROOT / ".venv-reladiff" / "bin" / "reladiff"))
    ap.add_argument("--one-connection", action="store_true",
                    help="also time ot compare with compare.connections_per_side: 1")
    ap.add_argument("--baseline", help="also time ot compare from this checkout's code")
    ap.add_argument("--no-reladiff", action="store_true")
    ap.add_argument("--month", help="also time `ot compare --month` of every table (YYYY-MM)")
    ap.add_argument("--work", default=None)
    ap.add_argument("--restore", help="put back the rows an interrupted run saved, and stop")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="ot-compare-servers-"))
    work.mkdir(parents=True, exist_ok=True)
    scratch = None
    if a.scale:
        scratch, a.source_url, a.warehouse_url = build(a.scale, a.seed, work)
    if not (a.source_url and a.warehouse_url):
        sys.exit("give --source-url and --warehouse-url, or --scale")
    pair = Pair(a.source_url, a.warehouse_url, work)
    if a.restore:
        restore(pair, Path(a.restore))
        return
    result: dict = {"load_before": os.getloadavg(), "relations": pair.wh_rels}
    try:
        if a.breakdown:
            result["breakdown"] = breakdown(pair, a.breakdown_runs)
        if not a.no_compare:
            result.update(compare_runs(pair, a, work))
        if a.month:
            result["month_compare"] = month_runs(pair, a, work)
    finally:
        if scratch is not None and not a.keep:
            scratch.drop()
        elif scratch is not None:
            say(f"kept: {a.source_url} {a.warehouse_url}")
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2, default=str))


def compare_runs(pair: Pair, a, work: Path) -> dict:
    saved = work / "saved_rows.json"
    expected = inject(pair, a.changed, a.deleted, saved)
    say(f"injected {len(expected['changed'])} changed, {len(expected['missing'])} deleted")
    builds = variants(pair, a, work)
    fig: dict[str, list[float]] = {k: [] for k in (
        *builds, *(f"{b}_engine" for b in builds), "scan_source", "scan_warehouse", "reladiff")}
    exact, counts, rel_rows = [], {}, []
    try:
        for i in range(a.runs):
            for build_, extra in builds.items():
                wall, engine, ok, counts = ot_compare(pair, expected, extra)
                fig[build_].append(wall)
                fig[f"{build_}_engine"].append(engine)
                exact.append(ok)
                say(f"run {i + 1}: {build_} {wall:.1f} s (engine {engine:.1f} s, exact: {ok})")
            s, w = bare_scans(pair)
            fig["scan_source"].append(s)
            fig["scan_warehouse"].append(w)
            r = None if a.no_reladiff else reladiff(pair, Path(a.reladiff))
            if r is not None:
                fig["reladiff"].append(r[0])
                rel_rows.append(r[1])
            say(f"run {i + 1}: scans {s:.1f} + {w:.1f} s, reladiff {r}")
    finally:
        restore(pair, saved)
    med = {k: round(statistics.median(v), 2) for k, v in fig.items() if v}
    scans = med["scan_source"] + med["scan_warehouse"]
    return {
        "runs": a.runs, "exact_every_run": all(exact), "last_counts": counts,
        "expected (missing, changed)": [a.deleted, a.changed],
        "reladiff_rows (+/-)": rel_rows, "median_s": med,
        "min_max_s": {k: [round(min(v), 2), round(max(v), 2)] for k, v in fig.items() if v},
        "over_bare_scans": {b: round(med[b] / scans, 2) for b in builds},
        "compare_over_slower_scan": round(
            med["compare"] / max(med["scan_source"], med["scan_warehouse"]), 2),
        "reladiff_over_compare": round(med["reladiff"] / med["compare"], 2)
        if "reladiff" in med else None,
    }


if __name__ == "__main__":
    main()

"""Where a backfill's memory goes: one first load at a fraction of production, traced.

Writes a source with the production shape at ``--scale`` (``bench/scale.py``'s writer: six
months at 200K orders a day times the scale), then backfills it with ``ot cycle`` as one
whole process under ``/usr/bin/time -v`` and the statement timer's memory trace
(``bench/stmt_timer``): every statement's resident memory when it began and its peak while
it ran, and the growth between statements (reading and landing, on the Python side). Prints
the peak RSS, rows/s, and the steps that grew memory most. SQLite -> DuckDB by default
(``--pair servers``: MariaDB -> PostgreSQL).

    .venv/bin/python bench/backfill_memory.py --scale 0.01
    .venv/bin/python bench/backfill_memory.py --scale 0.1 --dir /tmp/bm   # keeps the source

With ``--dir``, the source is kept there and reused by the next run with the same scale.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402  (bench/scale.py: the writer, the runner, the scratch databases)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=0.01, help="fraction of production")
    p.add_argument("--pair", choices=sorted(scale.PAIRS), default="embedded")
    p.add_argument("--dir", help="keep the source here and reuse it (embedded pair only)")
    p.add_argument("--top", type=int, default=8, help="how many steps to show")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    keep = args.dir is not None and args.pair == "embedded"
    root = Path(args.dir) if keep else Path(tempfile.mkdtemp(prefix="ot_bfmem_"))
    root.mkdir(parents=True, exist_ok=True)
    scratch = scale.Scratch(root)
    src_kind, wh_kind = scale.PAIRS[args.pair]
    src, wh = scratch.source(src_kind, "bfmem"), scratch.warehouse(wh_kind, "bfmem")
    marker = root / f"source-{args.scale}.json"
    try:
        if not (keep and marker.exists()):
            now = scale.to_epoch(scale.utcnow())
            end = (now - 8 * scale.WINDOW) // scale.DAY * scale.DAY
            per_day = max(1, round(scale.PRODUCTION_PER_DAY * args.scale))
            origin = end - scale.HISTORY_DAYS * scale.DAY
            scale.say(f"source: {scale.HISTORY_DAYS} days at {per_day} orders/day into {src_kind}")
            written = scale.write_source(src, args.seed, per_day, origin, origin, end)
            marker.write_text(json.dumps({"end": end, "written": written}))
        end = json.loads(marker.read_text())["end"]
        for old in root.glob("bfmem.duckdb*"):
            old.unlink()
        run_dir = root / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        runner = scale.Runner(run_dir, src, wh)
        mem_log = run_dir / "memory.tsv"
        runner.env["OT_BENCH_MEM_LOG"] = str(mem_log)
        scale.say("backfill: ot cycle, one whole process")
        t = time.perf_counter()
        wall, proc, peak = runner.run("backfill", ["cycle", "--as-of",
                                                   scale.iso(scale.from_epoch(end)), "--json"],
                                      rss=True)
        res = scale.last_json(proc.stdout)
        rows = sum(int(v.get("rows_extracted") or 0) for v in res.get("tables", {}).values())
        print(json.dumps({"pair": f"{src_kind} -> {wh_kind}", "scale": args.scale, "rows": rows,
                          "process_s": round(wall, 1), "rows_per_s": int(rows / wall),
                          "peak_rss_mib": round((peak or 0) / 1024),
                          "bench_s": round(time.perf_counter() - t, 1)}, indent=2))
        steps = []
        for line in mem_log.read_text().splitlines():
            _job, kind, seconds, start, top, head = line.split("\t", 5)
            steps.append((int(top) - int(start), int(top), float(seconds), kind, head))
        print("steps that grew resident memory most (MiB grown, peak MiB, seconds):")
        for grown, top, seconds, kind, head in sorted(steps, reverse=True)[:args.top]:
            what = head[:100] if kind == "statement" else "(between statements: reading, landing)"
            print(f"  +{grown:5d}  {top:6d}  {seconds:7.2f}  {what}")
    finally:
        if not keep:
            scratch.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

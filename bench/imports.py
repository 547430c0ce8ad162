"""Benchmark: the import floor of a cycle process. Prints figures; asserts nothing.

    .venv/bin/python bench/imports.py --runs 9

A steady-state ``ot cycle`` is a short process, so what it imports before and during the
cycle is a large share of its wall time. This runs ``--runs`` processes that import exactly
what a cycle on the embedded pair imports (the CLI, the cycle, the SQLite and DuckDB engine
modules, the Arrow data path and the drivers, and builds the two engines without
connecting), then exits: the time no cycle can go under with this stack.
Then one such process under ``python -X importtime``: self time summed per top-level package.
Run it with the interpreter of the install being measured (a wheel's venv has compiled
bytecode; an editable install where ``PYTHONDONTWRITEBYTECODE`` is set compiles on each run).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

CYCLE_IMPORTS = """
import ot_core.cli, ot_core.pipeline.cycle, ot_core.pipeline.batches, ot_core.jobs.lock
import ot_core.engines.duckdb, ot_core.engines.sqlite
import connectorx, pyarrow
from ot_core.db.connect import open_database
open_database("warehouse", "duckdb:///:memory:").dispose()
open_database("source", "sqlite://").dispose()
"""


# run from a neutral folder: ``python -c`` puts the working directory first on sys.path,
# which from a checkout would import the source tree instead of the install measured
NEUTRAL = tempfile.gettempdir()


def timed_runs(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CYCLE_IMPORTS], check=True, cwd=NEUTRAL)
        out.append(time.perf_counter() - t0)
    return out


def by_package() -> dict[str, float]:
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", CYCLE_IMPORTS],
                         check=True, capture_output=True, text=True, cwd=NEUTRAL)
    self_us: dict[str, float] = defaultdict(float)
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cum, name = line.removeprefix("import time:").split("|")
        self_us[name.strip().split(".")[0]] += float(own)
    return {k: v / 1e6 for k, v in self_us.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--top", type=int, default=12, help="packages listed by self time")
    a = p.parse_args()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, cwd=NEUTRAL)
    bare = time.perf_counter() - t0
    walls = timed_runs(a.runs)
    import ot_core

    print(f"python: {sys.executable}; ot_core from {ot_core.__file__}")
    print(f"bare interpreter start: {bare:.3f} s")
    print(f"a cycle's imports, whole process: median {statistics.median(walls):.3f} s "
          f"(min {min(walls):.3f}, max {max(walls):.3f}, {a.runs} runs)")
    pkgs = by_package()
    total = sum(pkgs.values())
    print(f"-X importtime, self time of every module: {total:.3f} s; by top-level package:")
    for name, secs in sorted(pkgs.items(), key=lambda kv: -kv[1])[:a.top]:
        print(f"  {name:<22} {secs:.3f} s")


if __name__ == "__main__":
    main()

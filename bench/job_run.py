"""Where the time of ``ot run cycle`` goes: runner imports, kernel start, imports in the
kernel, the cycle itself, writing the executed notebook (and the optional HTML copy).

Seeds a small embedded demo (SQLite → DuckDB) in a temporary OT_DATA_DIR, then runs
``ot run cycle`` ``--runs`` times as a whole process and reports the median wall time and
the median duration of each notebook cell as papermill recorded it. The parts papermill does
not time (importing papermill, inspecting the parameters cell, starting a kernel, writing
and converting the notebook) are timed apart, each in a fresh process. Prints figures;
asserts nothing.

    .venv/bin/python bench/job_run.py [--runs 3] [--days 3] [--orders-per-day 200]
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

PY = sys.executable
OT = [PY, "-m", "ot_core.cli"]


def fresh(code: str, env: dict[str, str]) -> float:
    """Seconds a snippet takes in a fresh interpreter (it prints its own figure)."""
    out = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def first_cell_imports() -> list[str]:
    """The import lines of the cycle notebook's first code cell after its parameters."""
    from ot_core.jobs.catalogue import load_catalogue

    nb = json.loads(load_catalogue().job("cycle").notebook_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and "parameters" not in c.get("metadata", {}).get("tags", [])]
    lines = "".join(code[0]["source"]).splitlines()
    return [ln for ln in lines if ln.startswith(("import ", "from "))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--orders-per-day", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ot-bench-jobrun-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_")}
    env.update(OT_DATA_DIR=str(tmp / "data"), OT_RUNS_DIR=str(tmp / "runs"))
    subprocess.run(OT + ["demo", "--days", str(args.days), "--orders-per-day",
                         str(args.orders_per_day)], env=env, check=True, capture_output=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; demo in {tmp}")

    walls, cells = [], {}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        res = subprocess.run(OT + ["run", "cycle"], env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if res.returncode != 0:
            sys.exit(f"ot run cycle failed: {res.stderr.strip()}")
        nb_path = Path(res.stdout.strip().split(": ", 1)[1].splitlines()[0])
        nb = json.loads(nb_path.read_text())
        cells.setdefault("notebook (papermill, kernel start included)", []).append(
            nb["metadata"]["papermill"]["duration"])
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            label = "cell: " + "".join(cell["source"]).strip().splitlines()[0][:60]
            cells.setdefault(label, []).append(cell["metadata"]["papermill"]["duration"])
    print(f"\nwhole process `ot run cycle` ({args.runs} runs): median {statistics.median(walls):.2f} s "
          f"(min {min(walls):.2f}, max {max(walls):.2f})")
    for label, values in cells.items():
        print(f"  {label:<70} {statistics.median(values):6.2f} s")

    nb_file = str(nb_path)
    parts = {
        "import papermill as the runner does (ot_core.jobs.runner.papermill)":
            "import time; from ot_core.jobs import runner; t = time.perf_counter(); "
            "runner.papermill(); print(time.perf_counter() - t)",
        "import papermill plainly":
            "import time; t = time.perf_counter(); import papermill; print(time.perf_counter() - t)",
        "import the runner module (ot_core.jobs.runner)":
            "import time; t = time.perf_counter(); import ot_core.jobs.runner; "
            "print(time.perf_counter() - t)",
        "inspect the parameters cell":
            "import time, papermill; from ot_core.jobs.catalogue import load_catalogue; "
            "p = load_catalogue().job('cycle').notebook_path; t = time.perf_counter(); "
            "papermill.inspect_notebook(str(p)); print(time.perf_counter() - t)",
        "start a python3 kernel until it answers":
            "import time; from jupyter_client.manager import start_new_kernel; "
            "t = time.perf_counter(); km, kc = start_new_kernel(kernel_name='python3'); "
            "d = time.perf_counter() - t; kc.stop_channels(); km.shutdown_kernel(now=True); print(d)",
        "imports of the job's first cell, in a fresh interpreter":
            "import time; t = time.perf_counter(); " + "; ".join(first_cell_imports())
            + "; print(time.perf_counter() - t)",
        "write the executed notebook (nbformat)":
            f"import time, nbformat; nb = nbformat.read({nb_file!r}, as_version=4); "
            f"t = time.perf_counter(); nbformat.write(nb, {nb_file!r} + '.copy'); "
            "print(time.perf_counter() - t)",
        "HTML twin (every run, part of sealing)":
            f"import time, nbformat; from pathlib import Path; from ot_core.jobs.runner import to_html; "
            f"nb = nbformat.read({nb_file!r}, as_version=4); t = time.perf_counter(); "
            f"to_html(nb, Path({nb_file!r} + '.copy')); print(time.perf_counter() - t)",
    }
    print("\nparts timed apart, each in a fresh process (median of runs):")
    for label, code in parts.items():
        try:
            values = [fresh(code, env) for _ in range(args.runs)]
        except subprocess.CalledProcessError as e:
            print(f"  {label:<70} n/a ({e.stderr.strip().splitlines()[-1]})")
            continue
        print(f"  {label:<70} {statistics.median(values):6.2f} s")


if __name__ == "__main__":
    main()

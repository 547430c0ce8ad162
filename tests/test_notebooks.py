"""Every notebook under notebooks/ (jobs and explore) runs top to bottom with nbval against a
small seeded warehouse, with its default parameters, as an analyst or the scheduler would.

nbval runs in a subprocess with OT_* pointing at the seeded files, so the notebooks see only
what the environment tells them; volatile outputs are sanitized by tests/nbval_sanitize.cfg.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ot_core.pipeline.cycle import catch_up
from ot_core.simulate import simulate
from ot_core.timeutil import from_epoch, to_epoch, utcnow

ROOT = Path(__file__).resolve().parent.parent

NOTEBOOK_DIRS = (ROOT / "notebooks",)


def test_notebooks_are_committed_stripped():
    for path in sorted(p for d in NOTEBOOK_DIRS for p in d.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, path
        if path.parent.name == "notebooks" and path.parent.parent.name == "jobs":
            tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
            assert "parameters" in tags, f"{path} has no parameters cell"


@pytest.mark.slow
def test_every_notebook_runs_against_a_seeded_warehouse(tmp_path):
    now = to_epoch(utcnow())
    until = from_epoch(now - now % 900)
    src = f"sqlite:///{tmp_path}/source.sqlite"
    wh = f"duckdb:///{tmp_path}/warehouse.duckdb"
    simulate(until, days=4, orders_per_day=60, seed=7, source=src)
    catch_up(until, start=from_epoch(to_epoch(until) - 3 * 86400), step="12h", source=src, warehouse=wh)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_") or k.startswith("OT_TEST_")}
    env.update(OT_SOURCE_URL=src, OT_WAREHOUSE_URL=wh, OT_DATA_DIR=str(tmp_path / "data"),
               OT_RUNS_DIR=str(tmp_path / "runs"), MPLBACKEND="Agg")
    found = sorted(p.relative_to(ROOT) for d in NOTEBOOK_DIRS for p in d.rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
    assert Path("notebooks/jobs/cycle.ipynb") in found
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-sanitize-with",
         "tests/nbval_sanitize.cfg", "-p", "no:cacheprovider", "-q", "notebooks/"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail

"""The product as a user installs it: a wheel built from this checkout, installed (not
editable, no extras) into a fresh venv, runs ``ot demo`` and ``ot run cycle`` from an empty
folder, with the embedded files in the per-user data folder; and the pipeline commands
import nothing of the notebook or plotting stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_STACK = {"nbformat", "papermill", "jsonschema", "matplotlib", "ipywidgets", "nbclient",
                  "nbconvert", "IPython"}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, (cmd, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.mark.slow
def test_the_wheel_installs_and_runs_from_an_empty_folder(tmp_path):
    dist, src = tmp_path / "dist", tmp_path / "src"
    # build from a copy of the tracked files: a build writes build/ and *.egg-info beside them
    tracked = _run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for rel in filter(None, tracked):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)])
    wheel = next(dist.glob("ot_workbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("ot_core/sql/merge/stage.sql", "ot_core/sql/compare/_scope.jinja",
                    "ot_core/defaults/pipeline.yml", "ot_core/defaults/jobs.yml",
                    "ot_core/notebooks/jobs/cycle.ipynb",
                    "ot_core/notebooks/explore/order_lookup.ipynb", "ot_core/py.typed"):
        assert shipped in names, shipped
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)])
    home, empty = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OT_", "XDG_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(home), PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    ot = str(env_dir / "bin" / "ot")
    demo = _run([ot, "demo", "--days", "2", "--orders-per-day", "80"], cwd=empty, env=env)
    data = home / ".local" / "share" / "ot-workbench"  # the per-user data folder
    assert (data / "warehouse.duckdb").exists() and (data / "source.sqlite").exists(), demo.stdout
    assert str(data) in demo.stdout
    _run([ot, "run", "cycle"], cwd=empty, env=env)
    runs = json.loads(_run([ot, "runs", "--json"], cwd=empty, env=env).stdout)
    assert [(r["job"], r["status"]) for r in runs] == [("cycle", "succeeded")]
    assert Path(runs[0]["notebook_path"]).is_relative_to(data / "runs")
    assert list(empty.iterdir()) == []  # nothing written where the user happened to be
    _run([str(py), "-m", "ot_core", "--help"], cwd=empty, env=env)
    # a server URL without its extra installed: one line naming the extra, no ImportError
    bad = subprocess.run([ot, "cycle"], cwd=empty, capture_output=True, text=True, timeout=120,
                         env={**env, "OT_SOURCE_URL": "mysql+pymysql://etl@127.0.0.1:1/ecs"})
    assert bad.returncode == 2, bad.stderr
    assert "pip install 'ot-workbench[mysql]'" in bad.stderr and "Traceback" not in bad.stderr


def test_pipeline_commands_import_nothing_of_the_notebook_stack():
    code = ("import ot_core.cli, ot_core.pipeline.cycle, ot_core.jobs.lock, ot_core.jobs.records,"
            " ot_core.jobs.cycle_record, ot_core.quality.compare, ot_core.pipeline.periods,"
            " ot_core.simulate")
    proc = _run([sys.executable, "-X", "importtime", "-c", code])
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "sqlalchemy" in imported, proc.stderr[:500]  # the measurement sees imports at all
    assert not imported & NOTEBOOK_STACK, sorted(imported & NOTEBOOK_STACK)


def test_the_cycle_jobs_kernel_imports_no_pandas():
    """The cycle notebook's imports (its first code cell after the parameters) leave pandas
    out: every 15-minute run's kernel would otherwise pay about 0.4 s for two small tables."""
    import nbformat

    from ot_core.resources import job_notebooks_dir

    nb = nbformat.read(job_notebooks_dir() / "cycle.ipynb", as_version=4)
    code = [c.source for c in nb.cells
            if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    assert "import" in code[0]
    proc = _run([sys.executable, "-X", "importtime", "-c", code[0]])
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "ot_core" in imported, proc.stderr[:500]
    assert "pandas" not in imported


def test_a_cycle_process_reads_and_lands_without_pandas(tmp_path):
    """The cycle's data path is Arrow from the source reader to the warehouse: a steady
    ``ot cycle`` process never imports pandas (about half a second of its start-up)."""
    from ot_core.simulate import simulate

    src = f"sqlite:///{tmp_path / 'src.sqlite'}"
    simulate("2026-03-03T00:00:00Z", start="2026-03-01", orders_per_day=50, seed=3, source=src)
    env = {**os.environ, "OT_SOURCE_URL": src,
           "OT_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'wh.duckdb'}",
           "OT_RUNS_DIR": str(tmp_path / "runs")}
    for as_of in ("2026-03-02T12:00:00Z", "2026-03-03T00:00:00Z"):
        proc = _run([sys.executable, "-X", "importtime", "-m", "ot_core", "cycle", "--as-of",
                     as_of, "--json"], env=env, cwd=tmp_path)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    figures = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert sum(t["rows_merged"] for t in figures["tables"].values()) > 0  # it moved rows
    assert "pyarrow" in imported, sorted(imported)
    assert "pandas" not in imported and not imported & NOTEBOOK_STACK

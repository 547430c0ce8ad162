"""The product as a user installs it: a wheel built from this checkout, installed (not
editable, no extras) into a fresh venv of the Python running the tests (CI runs this file
on every supported Python), runs ``ot demo`` twice, every job of the catalogue and ``ot
notebooks`` from an empty folder, with the embedded files in the per-user data folder; and
the pipeline commands import nothing of the notebook or plotting stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_STACK = {"nbformat", "papermill", "jsonschema", "matplotlib", "ipywidgets", "nbclient",
                  "nbconvert", "IPython"}
JOBS = ("cycle", "rotate_periods", "daily_monitoring", "maintenance", "monthly_compare")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, (cmd, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@dataclass
class Installed:
    wheel: Path
    python: Path
    ot: str
    env: dict[str, str]
    data: Path  # the per-user data folder under the fake HOME
    empty: Path  # the folder the user happens to be in

    def __call__(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        cmd = [self.ot, *args]
        if check:
            return _run(cmd, cwd=self.empty, env={**self.env, **env})
        return subprocess.run(cmd, cwd=self.empty, env={**self.env, **env}, capture_output=True,
                              text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("install")
    dist, src = tmp / "dist", tmp / "src"
    # build from a copy of the tracked files: a build writes build/ and *.egg-info beside them
    tracked = _run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for rel in filter(None, tracked):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)])
    wheel = next(dist.glob("ot_workbench-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # --no-compile: pip's byte-compiling of every dependency (25 s of CPU) is no part of what
    # the wheel ships; Python writes the bytecode of what it imports on first use instead
    _run([str(py), "-m", "pip", "install", "-q", "--no-compile", str(wheel)])
    home, empty = tmp / "home", tmp / "empty"
    home.mkdir()
    empty.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OT_", "XDG_", "VIRTUAL_ENV", "PYTHON", "JUPYTER", "MPL"))}
    env.update(HOME=str(home), PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return Installed(wheel, py, str(env_dir / "bin" / "ot"), env,
                     home / ".local" / "share" / "ot-workbench", empty)


@pytest.mark.slow
def test_the_wheel_ships_the_sql_config_and_notebooks(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    shipped = {"ot_core/sql/merge/stage.sql", "ot_core/sql/compare/_scope.jinja",
               "ot_core/defaults/pipeline.yml", "ot_core/defaults/jobs.yml", "ot_core/py.typed"}
    shipped |= {f"ot_core/notebooks/jobs/{job}.ipynb" for job in JOBS}
    shipped |= {f"ot_core/notebooks/explore/{p.name}"
                for p in (ROOT / "notebooks" / "explore").glob("*.ipynb")}
    assert shipped - names == set()
    # the bare install has the job stack (charts included) and none of the lab extra
    probe = _run([str(installed.python), "-c", "import importlib.util as u; print(*(bool("
                  "u.find_spec(m)) for m in ('matplotlib', 'papermill', 'jupyterlab', "
                  "'ipywidgets', 'pymysql')))"])
    assert probe.stdout.split() == ["True", "True", "False", "False", "False"]


@pytest.mark.slow
def test_demo_twice_then_every_job_from_an_empty_folder(installed):
    first = installed("demo", "--days", "2", "--orders-per-day", "80")
    data = installed.data
    assert (data / "warehouse.duckdb").exists() and (data / "source.sqlite").exists()
    assert str(data) in first.stdout and first.stdout.startswith("new demo")
    again = installed("demo")  # the README's first command, run a second time
    assert again.stdout.startswith(("up to date", "advanced")), again.stdout
    # the month of the demo's newest rows (the job's default, the previous month, may hold
    # none of a two-day demo); the demo ends on the last quarter-hour boundary
    month = (datetime.now(UTC) - timedelta(minutes=15)).strftime("%Y-%m")
    for job in JOBS:
        extra = ["-p", "month", month] if job == "monthly_compare" else []
        run = installed("run", job, "--json", *extra)
        outcome = json.loads(run.stdout)
        assert (outcome["job"], outcome["status"]) == (job, "succeeded"), outcome
    runs = json.loads(installed("runs", "--json").stdout)
    assert sorted((r["job"], r["status"]) for r in runs) == sorted(
        (job, "succeeded") for job in JOBS)
    for r in runs:
        assert Path(r["notebook_path"]).is_relative_to(data / "runs")
        if r["job"] in ("daily_monitoring", "monthly_compare"):  # their charts: in the record
            nb = nbformat.read(r["notebook_path"], as_version=4)
            outputs = [o for c in nb.cells for o in c.get("outputs", [])]
            assert any({"image/png", "image/svg+xml"} & set(o.get("data", {})) for o in outputs), r["job"]
    table = installed("runs").stdout
    assert "monthly_compare" in table and "NaN" not in table and "NaT" not in table
    assert list(installed.empty.iterdir()) == []  # nothing written where the user happened to be
    _run([str(installed.python), "-m", "ot_core", "--help"], cwd=installed.empty,
         env=installed.env)


@pytest.mark.slow
def test_ot_notebooks_from_the_wheel(installed):
    out = installed("notebooks", "mine").stdout
    copies = sorted(p.name for p in (installed.empty / "mine").glob("*.ipynb"))
    shipped = sorted(p.name for p in (ROOT / "notebooks" / "explore").glob("*.ipynb"))
    assert copies == shipped and all(f"copied    {n}" in out for n in shipped)
    assert "pip install 'ot-workbench[lab]'" in out  # the bare wheel lacks JupyterLab: said
    edited = installed.empty / "mine" / shipped[0]
    edited.write_text(edited.read_text().replace("import", "import  ", 1))
    again = installed("notebooks", "mine").stdout
    assert f"kept      {shipped[0]}" in again and "import  " in edited.read_text()
    lab = installed("notebooks", "mine", "--lab", check=False)
    assert lab.returncode == 2 and "pip install 'ot-workbench[lab]'" in lab.stderr, lab.stderr
    assert "Traceback" not in lab.stderr
    shutil.rmtree(installed.empty / "mine")


@pytest.mark.slow
def test_a_server_url_without_its_extra_is_one_line(installed):
    bad = installed("cycle", check=False, OT_SOURCE_URL="mysql+pymysql://etl@127.0.0.1:1/ecs")
    assert bad.returncode == 2, bad.stderr
    assert "pip install 'ot-workbench[mysql]'" in bad.stderr and "Traceback" not in bad.stderr


def test_environment_yml_lists_every_dependency_pyproject_declares():
    """Conda users get what pip users get: every core dependency, the extras the README's
    set-up uses (mysql, postgres, lab, test) and the same Python range."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {Requirement(_pep508(d)).name.lower().replace("_", "-") for d in conda + pip}
    conda_names = {"duckdb": "python-duckdb", "psycopg2-binary": "psycopg2"}
    wanted = list(project["dependencies"])
    for extra in ("mysql", "postgres", "lab", "test"):
        wanted += [r for r in project["optional-dependencies"][extra] if "ot-workbench" not in r]
    names = {Requirement(r).name.lower().replace("_", "-") for r in wanted}
    missing = sorted(n for n in names if conda_names.get(n, n) not in listed)
    assert missing == []
    python = next(d for d in conda if d.startswith("python") and not d.startswith("python-"))
    assert python.removeprefix("python") == project["requires-python"]


def _pep508(conda_spec: str) -> str:
    """A conda spec as a requirement string (``python=3.11`` → ``python==3.11``)."""
    name = conda_spec.split("#")[0].strip()
    return name.replace("=", "==", 1) if "=" in name and not any(
        op in name for op in (">=", "<=", "==", "!=")) else name


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

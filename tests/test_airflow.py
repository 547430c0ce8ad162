"""The generated Airflow DAGs (``jobs/airflow_dag.py``) in a real Airflow 3.

The fast tests check the generator. The ``airflow`` tests (deselected by default; run with
``pytest -m airflow``) build their own virtualenv with Airflow and this project installed
(cached in the temp folder, keyed by the pins and the project's dependencies), migrate a
SQLite metadata database in a temp AIRFLOW_HOME, put the generated file in its DAGs folder
and run the cycle DAG from a folder outside the checkout against a seeded embedded
warehouse. They check what the job's own audit says: the executed notebook, the
ot_job_runs row and its ``as_of``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock

from ot_core.jobs.airflow import DAG_FILE, airflow_dag
from ot_core.jobs.catalogue import parse_catalogue
from ot_core.jobs.records import recent_runs

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_PINS = ("apache-airflow==3.3.2",)  # the standard provider comes with it
INSTALL_TIMEOUT = 1200
RUN_TIMEOUT = 300


# -- the generator (fast) -----------------------------------------------------------------------
def test_generated_dag_file_passes_ruffs_airflow_rules():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is in the dev extra: pip install -e '.[dev]'"
    res = subprocess.run([ruff, "check", "--select", "AIR", str(ROOT / DAG_FILE)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_generator_follows_overlap_timeout_description_and_declared_parameters():
    cat = parse_catalogue({"jobs": {
        "often": {"notebook": "cycle.ipynb", "schedule": "*/5 * * * *", "overlap": True,
                  "timeout_seconds": 120, "description": "a cycle that may overlap"},
        "tidy": {"notebook": "maintenance.ipynb", "schedule": "30 4 * * *",
                 "description": "tidy the warehouse"},
    }})
    text = airflow_dag(cat)
    compile(text, DAG_FILE, "exec")
    often, tidy = text.split("\nwith DAG(")[1:]
    assert "dag_id='ot_often'" in often and "dag_id='ot_tidy'" in tidy
    assert "max_active_runs" not in often  # overlap: true
    assert "max_active_runs=1," in tidy
    # cycle.ipynb declares as_of in its parameters cell; maintenance.ipynb does not
    assert ("_job_task('often', timeout_seconds=120, pass_as_of=True,\n"
            "              pass_scheduled=True)") in often  # the cycle notebook declares it
    assert ("_job_task('tidy', timeout_seconds=3600, pass_as_of=False,\n"
            "              pass_scheduled=False)") in tidy
    assert "description='a cycle that may overlap'" in often
    assert "doc_md=\"tidy the warehouse\\n\\nRuns `ot run tidy`" in tidy
    assert "PapermillOperator" not in text and "{{" not in text  # no templates to go undefined


# -- a real Airflow ------------------------------------------------------------------------------
def _pins_key() -> str:
    """The pins, the Python and the project's own dependencies: what the venv is built from."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    key = repr((AIRFLOW_PINS, sys.version_info[:2], sorted(deps)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


PACKAGED = ("ot_core", "sql", "notebooks")  # pyproject's packages and package-dir mappings


def _source_digest() -> str:
    """What the installed copy of the project must match; it is reinstalled when it differs."""
    h = hashlib.sha256()
    for p in sorted([ROOT / "pyproject.toml",
                     *(p for d in PACKAGED for p in (ROOT / d).rglob("*"))]):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _pip(venv: Path, *args: str) -> None:
    res = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check",
                          "-q", *args], capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if res.returncode:
        pytest.fail(f"pip {' '.join(args)} failed in {venv}:\n{res.stderr[-3000:]}")


def _project_copy(into: Path) -> Path:
    """The project's packaging files alone, so building it leaves nothing in the checkout."""
    src = into / "ot-workbench"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in PACKAGED:  # the package and the folders the build maps into it
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"))
    return src


def airflow_venv() -> Path:
    """Airflow plus this project (not editable, as on a worker), built once per pin set."""
    base = Path(os.environ.get("OT_AIRFLOW_VENV_DIR", tempfile.gettempdir()))
    venv = base / f"ot-airflow-venv-{_pins_key()}"
    with FileLock(f"{venv}.lock", timeout=INSTALL_TIMEOUT), \
            tempfile.TemporaryDirectory() as scratch:
        ready, stamp = venv / "ot-ready", venv / "ot-source"
        if not ready.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            _pip(venv, "install", "--upgrade", "pip")
            _pip(venv, "install", *AIRFLOW_PINS, str(_project_copy(Path(scratch))))
            stamp.write_text(_source_digest())
            ready.write_text("\n".join(AIRFLOW_PINS))
        elif not stamp.exists() or stamp.read_text() != _source_digest():
            _pip(venv, "install", "--no-deps", "--force-reinstall",
                 str(_project_copy(Path(scratch))))
            stamp.write_text(_source_digest())
    return venv


@dataclass
class Deployment:
    venv: Path
    home: Path  # AIRFLOW_HOME
    data: Path  # OT_DATA_DIR
    runs: Path  # OT_RUNS_DIR
    work: Path  # the worker's folder: outside the checkout
    logs: Path

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    def env(self, *, ot_on_path: bool = True, **extra: str) -> dict[str, str]:
        """A worker's environment: OT_* and AIRFLOW_* of its own; `ot` on PATH or not."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OT_", "AIRFLOW", "VIRTUAL_ENV", "PYTHON"))}
        keep = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                if p and not (Path(p) / "ot").exists()]
        if ot_on_path:
            keep.insert(0, str(self.venv / "bin"))
        env.update(PATH=os.pathsep.join(keep), AIRFLOW_HOME=str(self.home),
                   AIRFLOW__CORE__DAGS_FOLDER=str(self.home / "dags"),
                   AIRFLOW__CORE__LOAD_EXAMPLES="False", OT_DATA_DIR=str(self.data),
                   OT_RUNS_DIR=str(self.runs), **extra)
        return env

    def run(self, name: str, cmd: list[str], **env_kw) -> tuple[subprocess.CompletedProcess, float]:
        """Run ``cmd`` from the worker folder; its output is kept in logs/NAME.log."""
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=self.work, env=self.env(**env_kw), capture_output=True,
                             text=True, timeout=RUN_TIMEOUT)
        seconds = time.perf_counter() - t0
        (self.logs / f"{name}.log").write_text(res.stdout + "\n--- stderr\n" + res.stderr)
        return res, seconds

    def check(self, name: str, cmd: list[str], **env_kw) -> float:
        res, seconds = self.run(name, cmd, **env_kw)
        assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}:\n" \
            f"{(res.stdout + res.stderr)[-4000:]}"
        return seconds

    def task_state(self, dag_id: str, task_id: str) -> tuple[str | None, str | None]:
        """(logical date, task state) of the newest run of ``dag_id``, from Airflow's own DB."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            row = db.execute(
                "SELECT dr.logical_date, ti.state FROM dag_run dr JOIN task_instance ti "
                "ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
                "WHERE dr.dag_id = ? AND ti.task_id = ? ORDER BY dr.id DESC LIMIT 1",
                (dag_id, task_id)).fetchone()
        assert row is not None, f"no run of {dag_id} in {self.home / 'airflow.db'}"
        return row

    def cycle_runs(self) -> list[dict]:
        df = recent_runs("cycle", limit=1000, warehouse=f"duckdb:///{self.warehouse}")
        return [{**r, "as_of": json.loads(r["parameters"] or "{}").get("as_of")}
                for r in df.to_dict("records")]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Deployment:
    """Airflow home with the generated DAG file, and a small seeded embedded warehouse."""
    t0 = time.perf_counter()
    venv = airflow_venv()
    built = time.perf_counter() - t0
    top = tmp_path_factory.mktemp("airflow")
    dep = Deployment(venv, top / "home", top / "data", top / "runs", top / "worker", top / "logs")
    for d in (dep.home / "dags", dep.work, dep.logs):
        d.mkdir(parents=True)
    shutil.copy2(ROOT / DAG_FILE, dep.home / "dags" / Path(DAG_FILE).name)
    seeded = dep.check("demo", [str(venv / "bin" / "ot"), "demo", "--days", "3",
                                "--orders-per-day", "200"])
    migrated = dep.check("db-migrate", [str(venv / "bin" / "airflow"), "db", "migrate"])
    print(f"\nairflow venv ready in {built:.1f} s ({venv}); ot demo {seeded:.1f} s; "
          f"airflow db migrate {migrated:.1f} s")
    return dep


INSPECT = textwrap.dedent('''
    """Load the DAGs folder as Airflow does; print each DAG's settings as JSON."""
    import json, sys
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(sys.argv[1])
    out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        (task,) = dag.tasks
        out["dags"][dag_id] = {
            "max_active_runs": dag.max_active_runs, "catchup": dag.catchup,
            "tags": sorted(dag.tags), "doc_md": dag.doc_md, "description": dag.description,
            "timetable": type(dag.timetable).__name__, "task_id": task.task_id,
            "timeout": task.execution_timeout.total_seconds(), "retries": task.retries,
            "operator": type(task).__name__}
    print("INSPECT " + json.dumps(out))
''')

TRIGGER = textwrap.dedent('''
    """Run one DAG as `airflow dags trigger` makes a run in Airflow 3: no logical date."""
    import json, sys
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(sys.argv[1]).get_dag(sys.argv[2])
    run = dag.test(logical_date=None)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print("TRIGGERED " + json.dumps({"logical_date": None if run.logical_date is None
                                     else run.logical_date.isoformat(),
                                     "run_after": run.run_after.isoformat(),
                                     "state": str(run.state), "tasks": states}))
''')


def _tagged(stdout: str, tag: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith(tag + " ")]
    assert lines, f"no {tag} line in the output"
    return json.loads(lines[-1][len(tag) + 1:])


@pytest.mark.airflow
def test_dags_import_in_airflow_3_with_the_catalogues_settings(deployment):
    script = deployment.work / "inspect_dags.py"
    script.write_text(INSPECT)
    res, _ = deployment.run("inspect", [str(deployment.venv / "bin" / "python"), str(script),
                                        str(deployment.home / "dags")])
    assert res.returncode == 0, res.stderr[-4000:]
    found = _tagged(res.stdout, "INSPECT")
    assert found["errors"] == {}
    from ot_core.jobs.catalogue import load_catalogue

    cat = load_catalogue()
    assert sorted(found["dags"]) == sorted(f"ot_{n}" for n in cat.jobs)
    for name, spec in cat.jobs.items():
        d = found["dags"][f"ot_{name}"]
        assert d["max_active_runs"] == 1 and d["catchup"] is False  # no job has overlap
        assert d["task_id"] == name and d["operator"] == "PythonOperator"
        assert d["timeout"] == spec.timeout_seconds and d["retries"] == 2
        assert d["description"] == spec.description and spec.description in d["doc_md"]
        assert d["tags"] == sorted(["order-tracking", f"job:{name}"])
        assert d["timetable"] == "CronTriggerTimetable"


@pytest.mark.airflow
def test_dags_test_runs_the_cycle_through_ot_run_with_the_logical_date(deployment):
    now = int(time.time())
    logical = datetime.fromtimestamp(now - now % 900, UTC)  # the slot `ot demo` ended on
    before = {r["run_id"] for r in deployment.cycle_runs()}
    airflow_s = deployment.check("dags-test", [str(deployment.venv / "bin" / "airflow"), "dags",
                                               "test", "ot_cycle", logical.isoformat()])
    assert deployment.task_state("ot_cycle", "cycle") == (
        logical.strftime("%Y-%m-%d %H:%M:%S.%f"), "success")
    new = [r for r in deployment.cycle_runs() if r["run_id"] not in before]
    assert [(r["status"], r["as_of"]) for r in new] == [("succeeded", _iso(logical))]
    notebook = Path(new[0]["notebook_path"])
    assert notebook.is_file() and deployment.runs in notebook.parents
    injected = [c for c in nbformat.read(notebook, as_version=4).cells
                if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and f'as_of = "{_iso(logical)}"' in injected[0].source

    # the same job run by hand, for the wall time Airflow adds around it
    direct_s = deployment.check("ot-run", [str(deployment.venv / "bin" / "ot"), "run", "cycle",
                                           "-p", "as_of", _iso(logical)])
    print(f"\nwall time: airflow dags test ot_cycle {airflow_s:.1f} s; "
          f"ot run cycle {direct_s:.1f} s; Airflow adds {airflow_s - direct_s:.1f} s")


@pytest.mark.airflow
def test_a_held_lock_skips_the_task_and_runs_nothing(deployment):
    """No `ot` on PATH and no OT_BIN: the DAG falls back to `python -m ot_core`."""
    now = int(time.time())
    logical = datetime.fromtimestamp(now - now % 900, UTC) - timedelta(minutes=15)
    before = deployment.cycle_runs()
    # the cycle job's lock, taken as the job runner takes it beside the DuckDB file
    with FileLock(f"{deployment.warehouse}.cycle.lock", timeout=0):
        deployment.check("dags-test-locked", [str(deployment.venv / "bin" / "airflow"), "dags",
                                              "test", "ot_cycle", logical.isoformat()],
                         ot_on_path=False)
    assert deployment.task_state("ot_cycle", "cycle") == (
        logical.strftime("%Y-%m-%d %H:%M:%S.%f"), "skipped")
    new = [r for r in deployment.cycle_runs() if r["run_id"] not in {b["run_id"] for b in before}]
    assert [(r["status"], r["as_of"]) for r in new] == [("skipped", _iso(logical))]
    assert "already running" in new[0]["error"]


@pytest.mark.airflow
def test_a_failure_other_than_exit_75_fails_the_task_at_once(deployment):
    """A configuration `ot run` cannot load exits 1: no retry (the task has retries=2)."""
    now = int(time.time())
    logical = datetime.fromtimestamp(now - now % 900, UTC) - timedelta(minutes=30)
    missing = deployment.work / "no-such-pipeline.yml"
    res, _ = deployment.run("dags-test-failing", [str(deployment.venv / "bin" / "airflow"),
                                                  "dags", "test", "ot_cycle", logical.isoformat()],
                            OT_CONFIG=str(missing))
    assert res.returncode != 0 and "DagRun failed" in res.stdout + res.stderr
    assert str(missing) in res.stdout + res.stderr  # `ot run`'s own one-line error is in the log
    assert deployment.task_state("ot_cycle", "cycle") == (
        logical.strftime("%Y-%m-%d %H:%M:%S.%f"), "failed")
    with sqlite3.connect(deployment.home / "airflow.db") as db:
        tries = db.execute("SELECT try_number FROM task_instance WHERE dag_id = 'ot_cycle' "
                           "ORDER BY start_date DESC LIMIT 1").fetchone()
    assert tries == (1,)


@pytest.mark.airflow
def test_a_triggered_run_without_logical_date_uses_its_run_time(deployment):
    """OT_BIN names the executable; `ot` is not on PATH."""
    script = deployment.work / "trigger_dag.py"
    script.write_text(TRIGGER)
    before = {r["run_id"] for r in deployment.cycle_runs()}
    res, _ = deployment.run("triggered", [str(deployment.venv / "bin" / "python"), str(script),
                                          str(deployment.home / "dags"), "ot_cycle"],
                            ot_on_path=False, OT_BIN=str(deployment.venv / "bin" / "ot"))
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    run = _tagged(res.stdout, "TRIGGERED")
    assert run["logical_date"] is None
    assert run["state"] == "success" and run["tasks"] == {"cycle": "success"}
    new = [r for r in deployment.cycle_runs() if r["run_id"] not in before]
    assert [(r["status"], r["as_of"]) for r in new] == [
        ("succeeded", _iso(datetime.fromisoformat(run["run_after"])))]

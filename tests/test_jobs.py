"""Jobs: catalogue validation, the papermill runner's audit trail, locks across processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ot_core.cli import main
from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.db.sql import parse_check
from ot_core.db.warehouse import Warehouse
from ot_core.engines.redshift import RowJobLock
from ot_core.errors import ConfigError, JobError
from ot_core.jobs.airflow import DAG_FILE, airflow_dag
from ot_core.jobs.catalogue import load_catalogue, markdown, parse_catalogue
from ot_core.jobs.lock import lock_for
from ot_core.jobs.records import recent_runs
from ot_core.jobs.runner import resolve_parameters
from ot_core.jobs.scheduler import crontab
from ot_core.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
OT = [sys.executable, "-m", "ot_core.cli"]


def _env(pair, **extra) -> dict[str, str]:
    return pair.process_env(**extra)


# -- catalogue ---------------------------------------------------------------------------------
def test_catalogue_loads_and_names_the_bad_job_and_key():
    cat = load_catalogue()
    assert cat.jobs["cycle"].schedule == "*/15 * * * *"
    assert cat.jobs["daily_monitoring"].schedule == "0 3 * * *"
    assert not any(j.overlap for j in cat.jobs.values())
    with pytest.raises(ConfigError, match=r"job 'cycle': schedule = '\*/15 \* \*': .*cron"):
        parse_catalogue({"jobs": {"cycle": {"notebook": "notebooks/jobs/cycle.ipynb",
                                            "schedule": "*/15 * *"}}})
    with pytest.raises(ConfigError, match=r"job 'maint': timeout_seconds = -1"):
        parse_catalogue({"jobs": {"maint": {"notebook": "n.ipynb", "schedule": "0 3 * * *",
                                            "timeout_seconds": -1}}})
    with pytest.raises(ConfigError, match=r"job 'x': colour"):
        parse_catalogue({"jobs": {"x": {"notebook": "n.ipynb", "schedule": "0 3 * * *",
                                        "colour": "red"}}})


def test_readme_airflow_and_crontab_are_generated_from_the_catalogue():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- jobs:start -->\n")[1].split("\n<!-- jobs:end -->")[0]
    assert block == markdown(), "README job table is stale: paste `ot jobs --markdown`"
    assert (ROOT / DAG_FILE).read_text() == airflow_dag(), \
        "jobs/airflow_dag.py is stale: run `ot jobs --airflow > jobs/airflow_dag.py`"
    res = CliRunner().invoke(main, ["crontab"])
    assert res.exit_code == 0, res.output
    out = res.output
    cat = load_catalogue()
    lines = [ln for ln in out.splitlines() if ln and not ln.startswith("#") and "=" not in ln.split()[0]]
    ot = str(Path(sys.executable).with_name("ot"))
    assert [ln.split(f" {ot} ")[0] for ln in lines] == [j.schedule for j in cat.jobs.values()]
    assert all(f"{ot} run {name} " in ln for name, ln in zip(cat.jobs, lines, strict=True))
    assert out == crontab(cat)
    assert " cd " not in out  # runs from any folder: every path in a line is absolute


def test_parameters_are_checked_before_anything_runs():
    spec = load_catalogue().job("cycle")
    with pytest.raises(JobError, match=r"no parameter 'as_off'.*as_of"):
        resolve_parameters(spec, {"as_off": "2026-01-01"})
    with pytest.raises(JobError, match="password"):
        resolve_parameters(spec, {"as_of": "postgresql://u:hunter22@h/db"})
    assert resolve_parameters(spec, {"as_of": "None"}) == {"as_of": None}
    mon = load_catalogue().job("daily_monitoring")
    with pytest.raises(JobError, match=r"'freshness_max_minutes' expects int; got 'soon'"):
        resolve_parameters(mon, {"freshness_max_minutes": "soon"})
    assert resolve_parameters(mon, {"freshness_max_minutes": "90"})["freshness_max_minutes"] == 90


# -- runner --------------------------------------------------------------------------------------
def test_failing_notebook_leaves_failed_notebook_row_and_its_error_s_exit_code(embedded):
    """The notebook stopped on a malformed value (a usage error): the run failed, and ``ot
    run`` exits 2 as ``ot cycle`` would have."""
    simulate("2026-03-02", start="2026-03-01", orders_per_day=30, seed=3, source=embedded.source_url)
    res = CliRunner().invoke(main, ["run", "cycle", "-p", "as_of", "not-a-date", "--html"],
                             env=_env(embedded))
    assert res.exit_code == 2, res.output
    assert "not an ISO-8601" in res.stderr and "failed" in res.stdout
    failed = list((embedded.tmp / "runs" / "cycle").rglob("cycle-*-failed.ipynb"))
    assert len(failed) == 1 and failed[0].with_suffix(".html").exists()
    assert "/cycle/20" in str(failed[0])
    nb = nbformat.read(failed[0], as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "UsageError"
    runs = recent_runs(warehouse=embedded.warehouse_url)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row.status == "failed" and row.job == "cycle" and row.run_id == 1
    assert row.notebook_path == str(failed[0]) and "UsageError" in row.error
    assert json.loads(row.parameters) == {"as_of": "not-a-date"}
    assert row.ended_at >= row.started_at
    listed = CliRunner().invoke(main, ["runs", "--failed", "--job", "cycle"], env=_env(embedded))
    assert listed.exit_code == 0 and "failed" in listed.stdout and failed[0].name in listed.stdout


def _wait_for(pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_two_concurrent_cycles_one_runs_the_other_exits_75(embedded):
    simulate("2026-03-03", start="2026-03-01", orders_per_day=40, seed=5, source=embedded.source_url)
    env = _env(embedded)
    # the first run pauses inside its cycle (a real pause in the kernel), so the second one
    # certainly starts while the first holds the lock, however fast the machine is; the pause
    # ends once the second has been refused
    release = embedded.tmp / "release-the-first"
    first_env = {**env, "OT_PAUSEPOINT": "after_load:ecs_order_info=120",
                 "OT_PAUSEPOINT_RELEASE": str(release)}
    first = subprocess.Popen(OT + ["run", "cycle", "-p", "as_of", "2026-03-03"], env=first_env,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder = Path(f"{embedded.tmp}/warehouse.duckdb.cycle.lock.json")
    assert _wait_for(lambda: holder.exists() and "run 1" in holder.read_text()), first.stderr
    second = subprocess.run(OT + ["run", "cycle", "-p", "as_of", "2026-03-03", "--json"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    release.touch()
    out, err = first.communicate(timeout=180)
    assert second.returncode == 75, second.stderr
    told = json.loads(second.stdout)
    assert (told["status"], told["exit_code"], told["run_id"], told["notebook"]) == ("skipped", 75, None, None)
    assert "already running" in told["error"] and "run 1" in told["error"]
    assert first.returncode == 0, err
    runs = recent_runs("cycle", warehouse=embedded.warehouse_url).sort_values("run_id")
    assert sorted(runs.status) == ["skipped", "succeeded"]
    skipped = runs[runs.status == "skipped"].iloc[0]
    assert "run 1" in skipped.error and pd.isna(skipped.notebook_path)
    succeeded = runs[runs.status == "succeeded"].iloc[0]
    figures = json.loads(succeeded.figures)
    assert set(figures) == set(load_config().tables)
    assert figures["ecs_order_info"]["rows_merged"] > 0
    assert len(list((embedded.tmp / "runs").rglob("*.ipynb"))) == 1


_HOLD = """
import sys, time
from click.testing import CliRunner

from ot_core.cli import main
from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.jobs.catalogue import load_catalogue
from ot_core.jobs.lock import lock_for
db = open_database("warehouse", sys.argv[1])
lock = lock_for(db, load_config(), load_catalogue().job("maintenance"))
assert lock.acquire()
lock.set_holder("run 41, the crashing one")
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("kind", ["embedded", "servers"])
def test_lock_holds_across_processes_and_a_killed_holder_releases_it(kind, request):
    pair = request.getfixturevalue(kind)
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, pair.warehouse_url], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        db = open_database("warehouse", pair.warehouse_url)
        lock = lock_for(db, load_config(), load_catalogue().job("maintenance"))
        assert not lock.acquire()
        assert "run 41" in lock.holder()
        other = lock_for(db, load_config(), load_catalogue().job("cycle"))
        assert other.acquire(), "locks are per job"
        other.release()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _wait_for(lambda: lock.acquire(), timeout=10), "a killed holder's lock must be released"
    lock.release()
    db.dispose()


def test_row_lock_for_redshift_parses_and_expires(embedded):
    cfg = load_config()
    spec = load_catalogue().job("cycle")
    rs = open_database("warehouse", "redshift+psycopg2://etl@example.invalid:5439/dev")
    def row_lock(db):
        return RowJobLock(Warehouse(cfg, db).lock_site(), db.backend, spec.name,
                          spec.timeout_seconds)

    for stmt in row_lock(rs).statements().values():
        parse_check(stmt, "redshift")
        assert "NOT IN (" not in stmt.upper()
    # the same statements, run for real on an embedded warehouse
    db = open_database("warehouse", embedded.warehouse_url)
    a, b = row_lock(db), row_lock(db)
    assert a.acquire()
    a.set_holder("run 7")
    assert not b.acquire() and "run 7" in b.holder()
    a.release()
    assert b.acquire()
    # a crashed holder: its row expires after the job's timeout + margin
    c = row_lock(db)
    assert not c.acquire()
    with db.engine.connect() as conn, conn.begin():
        conn.execute(sa.text("UPDATE settlement_ctl.ot_job_locks SET expires_at = "
                             "expires_at - INTERVAL 2 DAY"))
    assert c.acquire()
    c.release()
    db.dispose()


SECRET = "Sup3r-S3cret-pw-4711"


@pytest.mark.slow
def test_no_job_leaks_the_warehouse_password(servers, monkeypatch, caplog, capfd):
    """Every job of the catalogue, run with a password in the warehouse URL (trust auth
    ignores it): no executed notebook, HTML copy, job-runs row, log line or output has it."""
    import logging

    from ot_core.jobs.runner import execute

    url = sa.engine.make_url(servers.warehouse_url).set(password=SECRET)
    wh_url = url.render_as_string(hide_password=False)
    assert SECRET in wh_url
    simulate(None, days=3, orders_per_day=30, seed=4, source=servers.source_url)
    monkeypatch.setenv("OT_SOURCE_URL", servers.source_url)
    monkeypatch.setenv("OT_WAREHOUSE_URL", wh_url)
    caplog.set_level(logging.DEBUG)
    ran = {}
    for name, spec in load_catalogue().jobs.items():
        if not spec.notebook_path.exists():  # a notebook not written yet is not a job to run
            continue
        run = execute(name, html=True)
        ran[name] = run.status
        assert run.notebook.exists() and run.html.exists()
        assert f"{name}-" in run.notebook.name and run.notebook.name.endswith(f"-{run.status}.ipynb")
        header = nbformat.read(run.notebook, as_version=4).cells[0].source
        assert f"| status | **{run.status}**" in header
        assert f"| warehouse | `{url.render_as_string(hide_password=True)}` |" in header
        assert ":***@" in header
    assert ran["cycle"] == "succeeded" and {"daily_monitoring", "maintenance"} <= set(ran)
    artifacts = [p.read_text(errors="replace") for p in (servers.tmp / "runs").rglob("*")
                 if p.is_file()]
    assert len(artifacts) >= 2 * len(ran)
    out, err = capfd.readouterr()
    eng = sa.create_engine(servers.warehouse_url)
    with eng.connect() as c:
        rows = [str(tuple(r)) for t in ("ot_job_runs", "ot_check_results", "ot_maintenance_log")
                for r in c.exec_driver_sql(f"SELECT * FROM settlement_ctl.{t}")]
    eng.dispose()
    assert len([r for r in rows if "succeeded" in r or "failed" in r]) == len(ran)
    for text in [*artifacts, out, err, caplog.text, *rows]:
        assert SECRET not in text

"""Airflow 3 DAGs for the order-tracking jobs, GENERATED from the job catalogue.

Do not edit: regenerate with `ot jobs --airflow > jobs/airflow_dag.py` (again whenever the
catalogue or a notebook's parameters change). One DAG per job, one task that runs
`ot run JOB --json`: the parameter check, the job's lock, the ot_job_runs row and secret
handling are the project's own. The run's logical date (a triggered run has none: then its
run time) is passed as `-p as_of` to the jobs whose notebook declares `as_of`.

Workers need ot-workbench installed and the OT_* environment the jobs use (OT_SOURCE_URL,
OT_WAREHOUSE_URL, OT_DATA_DIR, OT_RUNS_DIR, ...). The `ot` executable is resolved when this
file is parsed: OT_BIN, else `ot` on PATH, else `python -m ot_core` with this interpreter.
Exit 75 from `ot run` with status "skipped" (another run holds the job's lock) skips the
task; any other exit 75 is retried; every other failure fails the task at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronTriggerTimetable

try:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 3.0 keeps them in airflow.exceptions
    from airflow.exceptions import AirflowFailException, AirflowSkipException

EXIT_TEMPFAIL = 75  # `ot run`: the job's lock is held, or a transient failure
START = datetime(2026, 1, 1, tzinfo=UTC)


def _resolve_ot() -> tuple[list[str], str]:
    """The command that starts `ot`, as absolute paths so a task runs from any folder, or
    an empty command and the reason."""
    named = os.environ.get("OT_BIN")
    if named:
        found = shutil.which(named)
        if found:
            return [os.path.abspath(found)], ""
        return [], f"OT_BIN={named!r} is not an executable file; point it at the ot executable"
    found = shutil.which("ot")
    if found:
        return [os.path.abspath(found)], ""
    if find_spec("ot_core") is not None:
        return [sys.executable, "-m", "ot_core"], ""
    return [], ("the ot executable is not on PATH and ot_core is not importable here: "
                "install ot-workbench on the workers or set OT_BIN")


OT, OT_PROBLEM = _resolve_ot()


def as_of_for(context) -> str:
    """The run's logical date; a triggered run has none (Airflow 3), then its run time."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outcome(stdout: str) -> dict:
    """The JSON line `ot run --json` prints last; {} when there is none."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return {}


def run_ot_job(job: str, pass_as_of: bool, pass_scheduled: bool = False, **context) -> dict:
    """Run `ot run JOB --json`; skip on a held lock, retry only exit 75, else fail at once."""
    if not OT:
        raise AirflowFailException(f"job {job!r}: {OT_PROBLEM}")
    cmd = [*OT, "run", job, "--json"]
    if pass_as_of:
        cmd += ["-p", "as_of", as_of_for(context)]
    if pass_scheduled:  # the slot is the scheduler's: one a cycle run by hand covered is done
        cmd += ["-p", "scheduled", "true"]
    print("running:", " ".join(cmd), flush=True)
    # A session of its own: when Airflow stops the task (execution_timeout), the run and its
    # notebook kernel are stopped together.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    print(out.strip(), err.strip(), sep="\n", flush=True)
    outcome = _outcome(out)
    error = outcome.get("error") or err.strip() or "no output"
    if proc.returncode == 0:
        return outcome
    if proc.returncode == EXIT_TEMPFAIL and outcome.get("status") == "skipped":
        raise AirflowSkipException(error)  # it names the job and the run holding its lock
    if proc.returncode == EXIT_TEMPFAIL:
        raise RuntimeError(f"job {job!r}: transient failure, retried: {error}")
    kept = f"; executed notebook: {outcome['notebook']}" if outcome.get("notebook") else ""
    raise AirflowFailException(
        f"job {job!r} {outcome.get('status', 'failed')} (exit {proc.returncode}): {error}{kept}")


def _job_task(job: str, *, timeout_seconds: int, pass_as_of: bool,
              pass_scheduled: bool = False) -> PythonOperator:
    return PythonOperator(
        task_id=job,
        python_callable=run_ot_job,
        op_kwargs={"job": job, "pass_as_of": pass_as_of, "pass_scheduled": pass_scheduled},
        execution_timeout=timedelta(seconds=timeout_seconds),
        retries=2,
        retry_delay=timedelta(seconds=60),
    )


with DAG(
    dag_id='ot_cycle',
    description='extract what changed, land raw batches, merge into the marts, trim raw',
    doc_md="extract what changed, land raw batches, merge into the marts, trim raw\n\nRuns `ot run cycle -p as_of <logical date>` on a worker. Schedule: every 15 minutes (cron `*/15 * * * *`); timeout 840 s; notebook `cycle.ipynb`; overlap: never (max_active_runs=1, and the job's lock). A held lock skips the task.",
    schedule=CronTriggerTimetable('*/15 * * * *', timezone="UTC"),
    start_date=START,
    catchup=False,  # after downtime a missed slot runs once, not once per slot
    max_active_runs=1,  # overlap: false in the catalogue
    tags=['order-tracking', 'job:cycle'],
) as ot_cycle:
    _job_task('cycle', timeout_seconds=840, pass_as_of=True,
              pass_scheduled=True)


with DAG(
    dag_id='ot_rotate_periods',
    description='create the half-year history tables data will need (monthly; also on demand)',
    doc_md="create the half-year history tables data will need (monthly; also on demand)\n\nRuns `ot run rotate_periods -p as_of <logical date>` on a worker. Schedule: monthly on day 1 at 01:00 UTC (cron `0 1 1 * *`); timeout 1800 s; notebook `rotate_periods.ipynb`; overlap: never (max_active_runs=1, and the job's lock). A held lock skips the task.",
    schedule=CronTriggerTimetable('0 1 1 * *', timezone="UTC"),
    start_date=START,
    catchup=False,  # after downtime a missed slot runs once, not once per slot
    max_active_runs=1,  # overlap: false in the catalogue
    tags=['order-tracking', 'job:rotate_periods'],
) as ot_rotate_periods:
    _job_task('rotate_periods', timeout_seconds=1800, pass_as_of=True,
              pass_scheduled=False)


with DAG(
    dag_id='ot_daily_monitoring',
    description='data checks (missing paths, routing gaps, retention, duplicates, freshness, ...)',
    doc_md="data checks (missing paths, routing gaps, retention, duplicates, freshness, ...)\n\nRuns `ot run daily_monitoring -p as_of <logical date>` on a worker. Schedule: daily at 03:00 UTC (cron `0 3 * * *`); timeout 1800 s; notebook `daily_monitoring.ipynb`; overlap: never (max_active_runs=1, and the job's lock). A held lock skips the task.",
    schedule=CronTriggerTimetable('0 3 * * *', timezone="UTC"),
    start_date=START,
    catchup=False,  # after downtime a missed slot runs once, not once per slot
    max_active_runs=1,  # overlap: false in the catalogue
    tags=['order-tracking', 'job:daily_monitoring'],
) as ot_daily_monitoring:
    _job_task('daily_monitoring', timeout_seconds=1800, pass_as_of=True,
              pass_scheduled=False)


with DAG(
    dag_id='ot_maintenance',
    description="VACUUM / CHECKPOINT where the warehouse's own numbers say it is needed",
    doc_md="VACUUM / CHECKPOINT where the warehouse's own numbers say it is needed\n\nRuns `ot run maintenance` on a worker. Schedule: daily at 04:30 UTC (cron `30 4 * * *`); timeout 3600 s; notebook `maintenance.ipynb`; overlap: never (max_active_runs=1, and the job's lock). A held lock skips the task.",
    schedule=CronTriggerTimetable('30 4 * * *', timezone="UTC"),
    start_date=START,
    catchup=False,  # after downtime a missed slot runs once, not once per slot
    max_active_runs=1,  # overlap: false in the catalogue
    tags=['order-tracking', 'job:maintenance'],
) as ot_maintenance:
    _job_task('maintenance', timeout_seconds=3600, pass_as_of=False,
              pass_scheduled=False)


with DAG(
    dag_id='ot_monthly_compare',
    description='compare warehouse and source per month; measure ECS drift',
    doc_md="compare warehouse and source per month; measure ECS drift\n\nRuns `ot run monthly_compare` on a worker. Schedule: monthly on day 2 at 05:00 UTC (cron `0 5 2 * *`); timeout 3600 s; notebook `monthly_compare.ipynb`; overlap: never (max_active_runs=1, and the job's lock). A held lock skips the task.",
    schedule=CronTriggerTimetable('0 5 2 * *', timezone="UTC"),
    start_date=START,
    catchup=False,  # after downtime a missed slot runs once, not once per slot
    max_active_runs=1,  # overlap: false in the catalogue
    tags=['order-tracking', 'job:monthly_compare'],
) as ot_monthly_compare:
    _job_task('monthly_compare', timeout_seconds=3600, pass_as_of=False,
              pass_scheduled=False)

"""The Airflow 3 DAG file (``jobs/airflow_dag.py``) generated from the job catalogue.

Every task runs ``ot run JOB --json``, so a job run by Airflow keeps everything a job run by
``ot schedule`` has: the parameter check, the job's lock, the ``ot_job_runs`` row and the
secret scrubbing. The DAG adds only what Airflow knows: the run's logical date (or its run
time, for a triggered run that has none) becomes ``as_of`` for the notebooks that declare
it, which is read here from each notebook's parameters cell at generation time. A test
checks the committed file equals this generator's output, so the two never drift apart.
"""

from __future__ import annotations

from ot_core.jobs.catalogue import Catalogue, JobSpec, describe_schedule, load_catalogue

DAG_FILE = "jobs/airflow_dag.py"
RETRIES = 2  # only a transient failure (exit 75 that is not a held lock) is retried
RETRY_DELAY_SECONDS = 60

_HEAD = '''"""Airflow 3 DAGs for the order-tracking jobs, GENERATED from the job catalogue.

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
    print(out.strip(), err.strip(), sep="\\n", flush=True)
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
        retries=@RETRIES@,
        retry_delay=timedelta(seconds=@RETRY_DELAY@),
    )
'''

_DAG = '''

with DAG(
    dag_id=%(dag_id)r,
    description=%(description)r,
    doc_md=%(doc_md)r,
    schedule=CronTriggerTimetable(%(schedule)r, timezone="UTC"),
    start_date=START,
    catchup=False,  # after downtime a missed slot runs once, not once per slot
%(overlap)s    tags=%(tags)r,
) as %(dag_id)s:
    _job_task(%(job)r, timeout_seconds=%(timeout)d, pass_as_of=%(as_of)r,
              pass_scheduled=%(scheduled)r)
'''


def declares(spec: JobSpec, parameter: str) -> bool:
    from ot_core.jobs.runner import notebook_parameters

    return parameter in notebook_parameters(spec.notebook_path)


def _doc_md(spec: JobSpec, as_of: bool) -> str:
    run = f"`ot run {spec.name}" + (" -p as_of <logical date>`" if as_of else "`")
    overlap = "allowed" if spec.overlap else "never (max_active_runs=1, and the job's lock)"
    return (f"{spec.description or spec.name}\n\n"
            f"Runs {run} on a worker. Schedule: {describe_schedule(spec.schedule)} "
            f"(cron `{spec.schedule}`); timeout {spec.timeout_seconds} s; notebook "
            f"`{spec.notebook}`; overlap: {overlap}. A held lock skips the task.")


def airflow_dag(cat: Catalogue | None = None) -> str:
    """The DAG file's text: the shared head, then one ``with DAG(...)`` block per job."""
    cat = cat or load_catalogue()
    parts = [_HEAD.replace("@RETRIES@", str(RETRIES))
             .replace("@RETRY_DELAY@", str(RETRY_DELAY_SECONDS))]
    for name, spec in cat.jobs.items():
        as_of = declares(spec, "as_of")
        parts.append(_DAG % {
            "dag_id": f"ot_{name}", "job": name, "description": spec.description or name,
            "doc_md": _doc_md(spec, as_of), "schedule": spec.schedule,
            "overlap": "" if spec.overlap else
            "    max_active_runs=1,  # overlap: false in the catalogue\n",
            "tags": ["order-tracking", f"job:{name}"], "timeout": spec.timeout_seconds,
            "as_of": as_of, "scheduled": as_of and declares(spec, "scheduled"),
        })
    return "".join(parts)

"""Commands that run and describe the scheduled jobs, and the generated pages."""

from __future__ import annotations

import sys

import click

from ot_core import errors
from ot_core.cli.base import (
    config_option,
    echo_json,
    frame_records,
    handle_errors,
    json_option,
    main,
)
from ot_core.secrets import redact


@main.command("run")
@click.argument("job")
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A notebook parameter (repeatable), e.g. -p as_of 2026-11-26T06:15:00Z. "
                   "Checked against the notebook's parameters cell; merged over the catalogue's "
                   "defaults. A list parameter takes uti, ecs,uti or a JSON list.")
@click.option("--html", is_flag=True,
              help="Kept for old scripts: every run now keeps a self-contained HTML copy of "
                   "its executed notebook (docs/audit.md).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome as one JSON line: run_id, job, status, notebook, error, "
                   "exit_code (status 'skipped' with exit 75: another run holds the lock).")
@config_option
@handle_errors
def run_job(job, params, html, config, as_json) -> None:
    """Run JOB's notebook (see `ot jobs`) with papermill under the job's lock. The executed
    notebook opens with the run's header (id, parameters, times, outcome, code version) and is
    kept under OT_RUNS_DIR (default: runs/ in the data folder)/JOB/YYYY/MM/DD whatever the
    outcome, written once, signed and read-only, with an HTML twin; a row with both files'
    SHA-256 is written to the control schema's ot_job_runs table (`ot runs verify`).
    Exit 0 succeeded, 1 failed, 75 skipped because a run of JOB is in progress."""
    from ot_core.jobs.runner import execute

    try:
        run = execute(job, dict(params), html=html, config=config)
    except errors.OTError as e:
        if not as_json:
            raise
        code = errors.exit_code(e)  # 75 for a held lock; nothing ran otherwise either
        echo_json({"run_id": None, "job": job,
                   "status": "skipped" if isinstance(e, errors.JobLocked) else "not run",
                   "notebook": None, "error": redact(str(e)), "exit_code": code})
        sys.exit(code)
    if as_json:
        echo_json(run.as_json())
        sys.exit(run.exit_code)
    click.echo(f"{run.job} run {run.run_id} {run.status}: {run.notebook}")
    if run.error:
        click.echo(f"error: {redact(run.error)}", err=True)
    sys.exit(run.exit_code)


@main.group("runs", invoke_without_command=True)
@click.option("--job", default=None, help="Only this job.")
@click.option("--failed", is_flag=True, help="Only failed runs.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option
@config_option
@click.pass_context
@handle_errors
def list_runs(ctx, job, failed, limit, as_json, config) -> None:
    """List recent job runs (newest first) from the ot_job_runs table, each with a link to
    its record's HTML twin; `ot runs verify` checks the records have not changed."""
    from ot_core.jobs.records import format_runs, listed_runs

    if ctx.invoked_subcommand is not None:
        return
    if as_json:
        echo_json(frame_records(listed_runs(job, failed=failed, limit=limit, config=config)))
    else:
        click.echo(format_runs(job=job, failed=failed, limit=limit, config=config))


@main.command("schedule")
@click.option("--notify-every", "notify_every", default=None, metavar="DURATION",
              help="Between jobs, also run `ot notify run` this often (e.g. 5m), so alerts "
                   "are evaluated while no job runs. Every job run evaluates them anyway.")
@handle_errors
def schedule(notify_every) -> None:
    """Run the job catalogue (see `ot jobs`) in the foreground on its cron
    schedules. A job that missed slots while the scheduler was down runs once, not once per
    slot. Prints the jobs and their next slots at start, then each job's start and exit.
    SIGTERM or Ctrl-C stops it at once when no job runs, else after the running job ends."""
    from ot_core.jobs.scheduler import Scheduler
    from ot_core.timeutil import parse_duration

    every = parse_duration(notify_every) if notify_every else None
    Scheduler(announce=click.echo, watch_every=every).run()


@main.command("crontab")
@click.option("--ot", "ot", default=None,
              help="The ot executable the lines call (default: the one running now).")
@click.option("--notify", "notify", default=None, metavar="CRON",
              help="Also a line running `ot notify run` on this schedule (e.g. '*/5 * * * *'), "
                   "so alerts are evaluated when no job runs (docs/operations.md).")
@handle_errors
def crontab_cmd(ot, notify) -> None:
    """Print crontab lines equivalent to `ot schedule`, generated from the job catalogue."""
    from ot_core.jobs.scheduler import crontab

    click.echo(crontab(ot=ot, notify=notify), nl=False)


@main.command("jobs")
@click.option("--markdown", is_flag=True, help="The README's job table (Markdown).")
@click.option("--airflow", is_flag=True, help="The Airflow 3 DAG file (jobs/airflow_dag.py).")
@json_option
@handle_errors
def jobs_cmd(markdown, airflow, as_json) -> None:
    """List the job catalogue (OT_JOBS, else the shipped one): schedules, timeouts, notebooks."""
    from ot_core.jobs.airflow import airflow_dag
    from ot_core.jobs.catalogue import load_catalogue, table_text
    from ot_core.jobs.catalogue import markdown as md

    if as_json:
        echo_json([{**j.model_dump(exclude={"notebooks_dir"}), "notebook_path": str(j.notebook_path)}
                   for j in load_catalogue().jobs.values()])
        return
    click.echo(airflow_dag() if airflow else md() if markdown else table_text(), nl=not airflow)


@main.command("notebooks")
@click.argument("dest", required=False, default="ot-notebooks", type=click.Path(file_okay=False))
@click.option("--lab", is_flag=True, help="Then open JupyterLab in DEST on 127.0.0.1 (needs the "
              "lab extra); it never saves outputs into the analyst notebooks, and passes "
              "--allow-root when run as root.")
@click.option("--voila", "voila", metavar="VIEW", default=None,
              help="Then serve one view of DEST read-only with Voilà (e.g. partner_dashboard) "
                   "as `ot serve` does: a login token (OT_VIEW_TOKEN) required, 127.0.0.1, "
                   "nothing loaded from the network.")
@click.option("--port", type=int, default=None, help="Port for --lab or --voila (default: the "
              "server's, 8888 or 8866, or the next free one).")
@click.option("--overwrite", is_flag=True,
              help="Replace copies that differ from the shipped notebooks; each is first saved "
                   "beside it as NAME.<UTC time>.ipynb.")
@handle_errors
def notebooks_cmd(dest, lab, voila, port, overwrite) -> None:
    """Copy the analyst notebooks (order lookup, partner dashboard, pipeline health,
    exceptions triage) into DEST (default: ./ot-notebooks) and, with --lab, open JupyterLab
    there. A copy you changed is kept and named, never replaced without --overwrite."""
    from ot_core.workbench.notebooks import copy_notebooks, open_lab, open_voila

    if lab and voila:
        raise click.UsageError("--lab and --voila: pick one")
    click.echo(copy_notebooks(dest, overwrite=overwrite).summary())
    if lab:
        open_lab(dest, port)
    elif voila:
        open_voila(dest, voila, port)


@main.group("docs")
def docs() -> None:
    """Print the documentation pages that are generated from the code: docs/commands.md."""


@docs.command("commands")
def docs_commands() -> None:
    """Print the command reference (docs/commands.md): every command's --help, with a table
    of contents. Regenerate the page with `ot docs commands > docs/commands.md`."""
    from ot_core.reference import command_reference

    click.echo(command_reference(main), nl=False)


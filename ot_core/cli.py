"""``ot``: a thin command line. Every command parses its options and calls one library
function; the library raises the project's errors, and this module turns them into a
message on stderr and an exit code (docs/errors.md#exit-codes): 1 a data check failed,
2 bad usage or configuration, 3 terminal (fix what the message names), 75 transient (retry
later)."""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from datetime import datetime

import click

from ot_core import errors
from ot_core.secrets import redact
from ot_core.timeutil import parse_as_of

# the documented exit codes (docs/errors.md#exit-codes), one place: ot_core.errors
EXIT_OK = errors.EXIT_OK
EXIT_CHECK_FAILED = errors.EXIT_CHECK_FAILED
EXIT_USAGE = errors.EXIT_USAGE
EXIT_TERMINAL = errors.EXIT_TERMINAL
EXIT_TRANSIENT = errors.EXIT_TRANSIENT


class IsoInstant(click.ParamType):
    name = "ISO-8601"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_as_of(value)
        except errors.UsageError as e:
            self.fail(str(e), param, ctx)


ISO = IsoInstant()


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


def handle_errors(fn):
    """Map every exception to one line on stderr and a documented exit code (EXIT_*);
    the traceback only under -v. Database errors are classified here too, so a driver's
    100-line traceback never reaches an operator."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - classified: one line and an exit code
            code = errors.exit_code(e)
            if _verbose() and not isinstance(e, errors.OTError):  # unexpected: show where
                click.echo(redact(traceback.format_exc()), err=True)
            if isinstance(e, errors.OTError):
                text = str(e)
            else:
                text = f"{type(e).__name__}: {errors.first_line(e)}"
                hint = errors.advice(e)
                text += f" — {hint}" if hint else ""
                text += " (run with -v for the traceback)" if not _verbose() else ""
            prefix = "transient: " if code == EXIT_TRANSIENT else "error: "
            click.echo(f"ot: {prefix}{redact(text)}", err=True)
            sys.exit(code)

    return wrapper


class OTGroup(click.Group):
    """Usage errors in the same one-line form as every other error (``ot: error: ...``,
    exit 2), with where to read the usage, instead of click's usage dump."""

    def main(self, args=None, prog_name=None, complete_var=None,
             standalone_mode=True, **extra):
        run = functools.partial(super().main, args, prog_name, complete_var,
                                standalone_mode=False, **extra)
        if not standalone_mode:
            return run()
        try:
            result: object = run()
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "ot"
            click.echo(f"ot: error: {redact(e.format_message())} (see `{where} --help`)",
                       err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(name="ot", cls=OTGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log each step (INFO level) to stderr.")
def main(verbose: bool) -> None:
    """Order-tracking workbench: extract orders, tracking states and path events from the
    source into the warehouse marts every 15 minutes, and run the scheduled jobs.

    Connections come from the environment: OT_SOURCE_URL and OT_WAREHOUSE_URL (SQLAlchemy
    URLs). Unset, they default to an embedded SQLite source and DuckDB warehouse in one data
    folder (OT_DATA_DIR, else the per-user data folder). The pipeline configuration is
    --config or OT_CONFIG (default: the one shipped with the package).

    \b
    Exit codes: 0 ok; 1 a data check failed; 2 bad usage or configuration;
    3 a terminal failure (fix what the message names); 75 transient: retry later.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False), default=None, envvar="OT_CONFIG",
    help="Pipeline config YAML (default: OT_CONFIG, else the one shipped with the package).")


@main.command()
@click.option("--until", type=ISO, default=None, help="Simulate up to this instant (default: now).")
@click.option("--start", type=ISO, default=None,
              help="First instant of a new source (default: --days before --until).")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="Length of a new source's history when --start is not given.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (reproducible).")
@click.option("--orders-per-day", type=click.IntRange(0, 1_000_000), default=20_000,
              show_default=True, help="Mean new orders per day (a new source only).")
@click.option("--into-existing", is_flag=True,
              help="Write synthetic orders into a source that already holds orders it did not "
                   "write (refused without it: such a source is someone's data).")
@handle_errors
def simulate(until, start, days, seed, orders_per_day, into_existing) -> None:
    """Write or advance the synthetic source tables (OT_SOURCE_URL: SQLite or MySQL/MariaDB).

    A new source gets orders from --start (or --days back) to --until; an existing one is
    advanced from where it stopped to --until, so each later cycle finds new work. A source
    holding orders the simulator did not write is refused unless --into-existing.
    """
    from tqdm import tqdm

    from ot_core.simulate import simulate as run

    bar = tqdm(total=0, unit="day", desc="simulate", disable=None)

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    res = run(until, seed=seed, start=start, days=days, orders_per_day=orders_per_day,
              progress=progress, into_existing=into_existing)
    bar.close()
    click.echo(f"source advanced {res.start} → {res.until}: {res.orders:,} orders, "
               f"{res.uti_upserts:,} tracking states written, {res.path_events:,} path events "
               f"in {res.seconds:.1f} s")


@main.command()
@click.option("--as-of", "as_of", type=ISO, default=None,
              help="The cycle's instant, ISO-8601 (default: now). Extraction reads rows before it.")
@click.option("--catch-up", is_flag=True,
              help="Run cycles from the last watermark to --as-of, one per --step.")
@click.option("--step", default=None, help="Catch-up step, e.g. 15m, 6h (default: cycle.interval).")
@click.option("--allow-past", is_flag=True,
              help="Allow an --as-of earlier than what was already read (a deliberate run in the "
                   "past: it reads nothing new and judges the lifecycle at that instant).")
@click.option("--new-schemas", is_flag=True,
              help="Confirm that the config's schema names changed on purpose: new, empty "
                   "tables are created there and the data under the old names stays behind.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@config_option
@handle_errors
def cycle(as_of, catch_up, step, allow_past, new_schemas, as_json, config) -> None:
    """Run one cycle: extract what changed, land it as raw batches, merge into the marts,
    trim raw tables. Safe to rerun: a killed cycle rerun ends where one clean run would."""
    from ot_core.db.warehouse import using
    from ot_core.jobs.lock import held

    # one handle (one config load, one engine) for the lock and the cycle
    with using(config, new_schemas=new_schemas) as wh, held("cycle", wh.cfg, wh):
        res = _cycle(as_of, catch_up, step, allow_past, wh)
    if as_json:
        click.echo(json.dumps({"as_of": res.as_of, "seconds": round(res.seconds, 3),
                               "tables": res.rows(), "lifecycle": res.lifecycle}, indent=2))
    else:
        click.echo(f"cycle as_of {res.as_of} in {res.seconds:.2f} s")
        click.echo(res.to_text())
        if res.lifecycle:
            lc = res.lifecycle
            click.echo(f"lifecycle (cutoff {lc['cutoff']}, {lc['seconds']:.2f} s): "
                       f"{lc['rows_archived']} archived, {lc['rows_trimmed']} trimmed, "
                       f"{lc['rows_reactivated']} reactivated, {lc['exceptions_opened']} "
                       f"exceptions opened, {lc['exceptions_resolved']} resolved")
            for w in lc["warnings"]:
                click.echo(f"warning: {w}", err=True)


def _cycle(as_of, catch_up, step, allow_past, wh):
    """One cycle, or catch-up cycles, on the command's warehouse handle (which carries the
    config and the --new-schemas confirmation)."""
    from ot_core.pipeline.cycle import catch_up as run_catch_up
    from ot_core.pipeline.cycle import run_cycle

    if catch_up:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="cycle", desc="catch-up", disable=None)

        def tick(res, i, n):
            bar.total = n
            bar.update(1)

        results = run_catch_up(as_of, step=step, config=wh.cfg, on_cycle=tick, warehouse=wh)
        bar.close()
        res = results[-1]
        click.echo(f"{len(results)} cycles up to {res.as_of}")
    else:
        res = run_cycle(as_of, config=wh.cfg, allow_past=allow_past, warehouse=wh)
    return res


@main.command()
@click.option("--days", type=click.IntRange(2, 365), default=21, show_default=True,
              help="Days of orders a new demo simulates.")
@click.option("--orders-per-day", type=click.IntRange(1, 100_000), default=2_000, show_default=True,
              help="Mean new orders per day of a new demo.")
@click.option("--step", default="6h", show_default=True, help="Catch-up cycle step.")
@click.option("--fresh", is_flag=True,
              help="Delete the existing demo (the embedded source and warehouse files in the "
                   "data folder) and start a new one.")
@config_option
@handle_errors
def demo(days, orders_per_day, step, fresh, config) -> None:
    """Seed the embedded source, catch up with cycles and print what landed where.

    Run again, it advances the existing demo to now (the orders of the time that passed,
    then the cycles to load them) and says so, or says there is nothing new; --days and
    --orders-per-day apply to a new demo (the first one, or with --fresh)."""
    from ot_core.demo import cycle_bar, describe, run_demo

    with cycle_bar() as tick:
        res = run_demo(days=days, orders_per_day=orders_per_day, step=step, config=config,
                       progress=tick, fresh=fresh)
    click.echo(describe(res))


@main.command("run")
@click.argument("job")
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A notebook parameter (repeatable), e.g. -p as_of 2026-11-26T06:15:00Z. "
                   "Checked against the notebook's parameters cell; merged over the catalogue's "
                   "defaults. A list parameter takes uti, ecs,uti or a JSON list.")
@click.option("--html", is_flag=True,
              help="Also keep a self-contained HTML copy of the executed notebook.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome as one JSON line: run_id, job, status, notebook, error, "
                   "exit_code (status 'skipped' with exit 75: another run holds the lock).")
@config_option
@handle_errors
def run_job(job, params, html, config, as_json) -> None:
    """Run JOB's notebook (see `ot jobs`) with papermill under the job's lock. The executed
    notebook opens with the run's header (id, parameters, times, outcome, code version) and is
    kept under OT_RUNS_DIR (default: runs/ in the data folder)/JOB/YYYY/MM/DD whatever the
    outcome; a row is written to the control schema's ot_job_runs table.
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


def echo_json(value) -> None:
    """Every --json prints one JSON document on stdout: an object, or a list of objects for
    a listing (empty list when there is nothing), with dates as ISO text."""
    click.echo(json.dumps(value, default=str))


def frame_records(frame) -> list[dict]:
    return [{k: (None if v != v else v) for k, v in row.items()}  # NaN → null
            for row in frame.to_dict(orient="records")]


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document instead of a table.")


@main.command("runs")
@click.option("--job", default=None, help="Only this job.")
@click.option("--failed", is_flag=True, help="Only failed runs.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option
@config_option
@handle_errors
def list_runs(job, failed, limit, as_json, config) -> None:
    """List recent job runs (newest first) from the ot_job_runs table."""
    from ot_core.jobs.records import format_runs, listed_runs

    if as_json:
        echo_json(frame_records(listed_runs(job, failed=failed, limit=limit, config=config)))
    else:
        click.echo(format_runs(job=job, failed=failed, limit=limit, config=config))


@main.command("schedule")
@handle_errors
def schedule() -> None:
    """Run the job catalogue (see `ot jobs`) in the foreground on its cron
    schedules. A job that missed slots while the scheduler was down runs once, not once per
    slot. Prints the jobs and their next slots at start, then each job's start and exit.
    SIGTERM or Ctrl-C stops it at once when no job runs, else after the running job ends."""
    from ot_core.jobs.scheduler import Scheduler

    Scheduler(announce=click.echo).run()


@main.command("crontab")
@click.option("--ot", "ot", default=None,
              help="The ot executable the lines call (default: the one running now).")
@handle_errors
def crontab_cmd(ot) -> None:
    """Print crontab lines equivalent to `ot schedule`, generated from the job catalogue."""
    from ot_core.jobs.scheduler import crontab

    click.echo(crontab(ot=ot), nl=False)


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
@click.option("--lab", is_flag=True, help="Then open JupyterLab in DEST (needs the lab extra).")
@click.option("--overwrite", is_flag=True,
              help="Replace copies that differ from the shipped notebooks; each is first saved "
                   "beside it as NAME.<UTC time>.ipynb.")
@handle_errors
def notebooks_cmd(dest, lab, overwrite) -> None:
    """Copy the analyst notebooks (order lookup, partner dashboard, pipeline health,
    exceptions triage) into DEST (default: ./ot-notebooks) and, with --lab, open JupyterLab
    there. A copy you changed is kept and named, never replaced without --overwrite."""
    from ot_core.workbench.notebooks import copy_notebooks, open_lab

    click.echo(copy_notebooks(dest, overwrite=overwrite).summary())
    if lab:
        open_lab(dest)


@main.group("docs")
def docs() -> None:
    """Print the documentation pages that are generated from the code: docs/commands.md."""


@docs.command("commands")
def docs_commands() -> None:
    """Print the command reference (docs/commands.md): every command's --help, with a table
    of contents. Regenerate the page with `ot docs commands > docs/commands.md`."""
    from ot_core.reference import command_reference

    click.echo(command_reference(main), nl=False)


TABLE_OPTION = click.option(
    "--table", "table", required=True, type=click.Choice(["ecs", "uti", "uts"]),
    help="Which table: ecs_order_info, uni_tracking_info or uni_tracking_spath.")
MONTH_OPTION = click.option("--month", default=None, metavar="YYYY-MM",
                            help="Rows whose archive column falls in this month (UTC).")
KEY_RANGE_OPTION = click.option("--key-range", default=None, metavar="LO:HI",
                                help="Keys in [LO, HI).")


@main.command()
@TABLE_OPTION
@MONTH_OPTION
@KEY_RANGE_OPTION
@click.option("--against", type=click.Choice(["source", "legacy"]), default="source",
              show_default=True,
              help="The source table, or the legacy relation named in compare.legacy.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_option
@handle_errors
def compare(table, month, key_range, against, as_json, config) -> None:
    """Compare a table with the warehouse (mart + every history table) by key: checksums of
    key segments computed inside each database, bisecting only mismatching segments. Every
    difference is classified: known wrong (missing, extra, changed: no cycle will correct
    it), pending (the next cycle reads it) or future (stamped after the source's clock).
    Exits 1 when any row is known wrong (the result and its keys are kept: repair them with
    `ot repair --from-compare RUN_ID`)."""
    from ot_core.config import load_config
    from ot_core.errors import CompareFailed
    from ot_core.quality.compare import judge, run_compare

    cfg = load_config(config)
    rep = run_compare(table, month=month, key_range=key_range, against=against, config=cfg,
                      fail=False)
    verdict = judge(rep, cfg.compare.max_mismatch_rate)
    if as_json:
        click.echo(json.dumps(rep.to_dict()))
    else:
        click.echo(f"{rep.table}: {rep.source} vs {rep.target} ({rep.scope}); run {rep.run_id}")
        click.echo(f"rows {rep.rows_source:,} / {rep.rows_target:,}; known wrong: missing "
                   f"{rep.missing}, extra {rep.extra}, changed {rep.changed} (mismatch rate "
                   f"{rep.mismatch_rate:.4%}); pending {rep.pending}, future {rep.future}; "
                   f"{rep.rows_transferred:,} rows transferred in {rep.seconds:.2f} s")
        if rep.changed_columns:
            click.echo(f"changed columns: {rep.changed_columns}")
        shown = {k: v for k, v in rep.sample_keys.items() if v}
        if shown:
            click.echo(f"sample keys: {shown}")
        if verdict.ok:
            click.echo(f"ok: {verdict.message}")
    if not verdict.ok:
        raise CompareFailed(verdict.message)


@main.command()
@TABLE_OPTION
@MONTH_OPTION
@KEY_RANGE_OPTION
@click.option("--from-compare", "from_compare", default=None, metavar="RUN_ID",
              help="Repair the keys a kept comparison found (the run id `ot compare` printed).")
@click.option("--only", "kinds", multiple=True,
              type=click.Choice(["missing", "extra", "changed", "duplicate", "pending",
                                 "future"]),
              help="Repair only keys of this kind (repeatable; default: every kind).")
@click.option("--dry-run", is_flag=True, help="Find and count the keys; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_option
@handle_errors
def repair(table, month, key_range, from_compare, kinds, dry_run, as_json, config) -> None:
    """Re-read from the source, by key, every row a comparison found different (a kept one
    with --from-compare, else a new one over --month / --key-range / the whole table), land
    them as one audited batch and merge them, so the warehouse ends equal to the source.
    Holds the cycle's lock; idempotent (a second run finds nothing). Exits 1 when rows are
    still different afterwards (the source changed meanwhile: run it again)."""
    from ot_core.errors import CompareFailed
    from ot_core.quality.repair import repair as run

    res = run(table, month=month, key_range=key_range, from_compare=from_compare,
              kinds=list(kinds) or None, dry_run=dry_run, config=config)
    if as_json:
        echo_json({**{k: v for k, v in vars(res).items()}, "keys": res.keys})
    else:
        click.echo(res.summary())
    if res.still_different:
        raise CompareFailed(f"{res.still_different} row(s) still differ after the repair: the "
                            "source changed meanwhile; run `ot repair` again")


@main.command("refresh-ecs")
@click.option("--since", type=ISO, default=None,
              help="Only orders created at or after this instant (default: every extracted order).")
@click.option("--dry-run", is_flag=True, help="Count drifted rows; change nothing.")
@config_option
@handle_errors
def refresh_ecs(since, dry_run, config) -> None:
    """Re-extract the order rows (ECS) whose content changed at the source after they were
    extracted (orders have no update time, so no cycle reads them again), and merge them as
    one audited batch under the cycle's lock: `ot repair --table ecs --only changed`."""
    from ot_core.quality.refresh import refresh_ecs as run

    click.echo(run(since, config=config, dry_run=dry_run).summary())


@main.command()
@click.option("--as-of", "as_of", type=ISO, default=None,
              help="Instant to rotate for, ISO-8601 (default: now).")
@config_option
@handle_errors
def rotate(as_of, config) -> None:
    """Create the half-year history tables that mart data or the next 45 days can need
    (idempotent). Exits 3 naming the missing grant when the user may not create tables."""
    from ot_core.pipeline.periods import rotate as run

    click.echo(run(as_of, config=config).summary())


@main.group()
def exceptions() -> None:
    """List and resolve rows the lifecycle could not archive (order_tracking_exceptions)."""


@exceptions.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved exceptions.")
@json_option
@config_option
@handle_errors
def exceptions_list(include_resolved, as_json, config) -> None:
    """Print the open exceptions (all of them with --all), oldest first."""
    from ot_core.pipeline.exception_log import list_exceptions

    frame = list_exceptions(include_resolved, config=config)
    if as_json:
        echo_json(frame_records(frame))
    else:
        click.echo(frame.to_string(index=False) if len(frame) else "no exceptions")


@exceptions.command("resolve")
@click.argument("exception_id", type=int)
@click.option("--note", required=True, help="Why it is resolved (kept in the notes column).")
@config_option
@handle_errors
def exceptions_resolve(exception_id, note, config) -> None:
    """Mark exception EXCEPTION_ID resolved now, with --note appended to its notes."""
    from ot_core.pipeline.exception_log import resolve_exception

    row = resolve_exception(exception_id, note, config=config)
    click.echo(f"exception {row['exception_id']} resolved at {row['resolved_at']}")


if __name__ == "__main__":  # pragma: no cover
    main()

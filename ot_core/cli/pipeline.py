"""Commands that move data: simulate, demo, cycle, rotate and the exceptions log."""

from __future__ import annotations

import json

import click

from ot_core.cli.base import (
    ISO,
    config_option,
    echo_json,
    frame_records,
    handle_errors,
    json_option,
    main,
)


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


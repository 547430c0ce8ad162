"""Commands that check the warehouse against the source and repair what differs."""

from __future__ import annotations

import json

import click

from ot_core.cli.base import ISO, config_option, echo_json, handle_errors, main

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


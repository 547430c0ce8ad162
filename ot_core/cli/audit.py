"""Commands over the audit trail of job runs (docs/audit.md)."""

from __future__ import annotations

import sys

import click

from ot_core.cli.base import config_option, echo_json, handle_errors, json_option
from ot_core.cli.jobs import list_runs


@list_runs.command("verify")
@click.argument("run_id", type=int, required=False)
@json_option
@config_option
@handle_errors
def verify_runs(run_id, as_json, config) -> None:
    """Re-hash the executed notebooks and HTML twins of every sealed run (or RUN_ID's) and
    walk the chain of ot_job_runs rows: report records that changed, went missing, or rows
    deleted or re-ordered. Exit 0 all match, 1 any problem (each named on its own line)."""
    from ot_core.jobs.audit import verify

    result = verify(run_id, config=config)
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(result.text())
    sys.exit(0 if result.ok else 1)

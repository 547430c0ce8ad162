"""Commands for the person on call: ``ot status`` and ``ot notify`` (docs/operations.md)."""

from __future__ import annotations

import sys

import click

from ot_core.cli.base import config_option, echo_json, handle_errors, json_option, main


@main.command("status")
@json_option
@config_option
@handle_errors
def status_cmd(as_json, config) -> None:
    """One screen for the on-call person: per table the last cycle, how far its data is
    behind now and rows merged in the last hour; every job's last run, outcome and next
    slot; checks failing in the latest daily monitoring; open exceptions by type and age;
    locks held. Nothing is written (a read-only user can run it).

    \b
    Exit 0 healthy; 1 a check fails or a table had no cycle within the freshness limit
    (OT_MAX_LAG, e.g. 60s or 1h; default 4 cycle intervals); 75 the warehouse cannot be
    reached. Usable as a scheduler's or a container's health check."""
    from ot_core.jobs.status import pipeline_status

    status = pipeline_status(config)
    if as_json:
        echo_json(status.as_json())
    else:
        click.echo(status.text(), nl=False)
    sys.exit(status.exit_code)


@main.group("notify")
def notify_group() -> None:
    """Alerts to e-mail, Slack, Teams, Google Chat or a JSON webhook: destinations are
    Apprise URLs in OT_NOTIFY (space-separated), OT_NOTIFY_FILE (one a line) or the config's
    alerts.notify (see docs/operations.md)."""


@notify_group.command("test")
@json_option
@config_option
@handle_errors
def notify_test(as_json, config) -> None:
    """Send a test message to every destination and say which worked (URLs shown masked).
    Exit 0 all delivered, 1 at least one was not."""
    from dataclasses import asdict

    from ot_core.jobs.notify import send_test

    results = send_test(config)
    if as_json:
        echo_json([asdict(r) for r in results])
    else:
        for r in results:
            click.echo(f"{'ok    ' if r.ok else 'FAILED'} {r.destination}"
                       + (f"\n       {r.error}" if r.error else ""))
    sys.exit(0 if all(r.ok for r in results) else 1)


@notify_group.command("run")
@json_option
@config_option
@handle_errors
def notify_run(as_json, config) -> None:
    """Evaluate now and send what changed: problems that started or ended, and the daily
    digest of those still failing. Every `ot run` does this after its job; run this from
    cron or Airflow every few minutes so a stalled scheduler is noticed too. A destination
    that is down is logged and retried at the next evaluation (exit 0); 75 the warehouse
    cannot be reached."""
    from dataclasses import asdict

    from ot_core.jobs.alerts import evaluate

    outcome = evaluate(config)
    if as_json:
        echo_json({"at": outcome.at, "destinations": outcome.destinations,
                   "problems": outcome.problems,
                   "sent": [asdict(s) for s in outcome.sent]})
        return
    if not outcome.destinations:
        click.echo("no alert destination is configured (OT_NOTIFY, OT_NOTIFY_FILE or "
                   "alerts.notify): nothing evaluated")
        return
    click.echo(f"{len(outcome.problems)} problem(s) now: {', '.join(outcome.problems) or 'none'}")
    for s in outcome.sent:
        click.echo(f"{s.kind} to {s.destination}: {s.title}"
                   + (f" — NOT DELIVERED ({s.error}); retried next time" if s.error else ""))
    if not outcome.sent:
        click.echo("nothing to send (no change, no digest due)")

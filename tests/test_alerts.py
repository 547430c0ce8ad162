"""Alerts reach real receivers on loopback (an SMTP server that checks the login and parses
the mail, an HTTP server that keeps the webhook JSON), on a change of state and in a daily
digest, never repeat an unchanged state more than daily, survive a destination that is down
(logged, retried, delivered once it is back) and never show a secret."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alert_servers import free_port, smtp_server, webhook_server
from click.testing import CliRunner

from ot_core.cli import main
from ot_core.config import load_config, parse_config
from ot_core.db.connect import open_database
from ot_core.db.schema import tables_for
from ot_core.jobs import alerts, records
from ot_core.jobs.alerts import evaluate
from ot_core.pipeline.cycle import run_cycle
from ot_core.quality.monitor import run_checks
from ot_core.simulate import simulate
from ot_core.timeutil import utcnow


def seed(pair) -> None:
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3,
             source=pair.source_url)
    run_cycle("2026-03-01T12:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)


def record_run(pair, job: str, status: str, error: str | None = None, at=None) -> int:
    cfg = load_config()
    db = open_database("warehouse", pair.warehouse_url)
    at = (at or utcnow()).replace(microsecond=0)
    run_id = records.start_run(db, cfg, job, {}, at, None)
    records.finish_run(db, cfg, run_id, status=status, ended=at + timedelta(seconds=3),
                       notebook_path=f"/runs/{job}-{run_id}.ipynb", error=error, figures=None)
    db.dispose()
    return run_id


def alert_rows(pair) -> list[dict]:
    db = open_database("warehouse", pair.warehouse_url)
    t = tables_for(load_config(), db.backend).alerts
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            sa.select(t).order_by(t.c.destination, t.c.alert_key))]
    db.dispose()
    return rows


@pytest.fixture
def quiet_freshness(monkeypatch):
    """Tests of job and check alerts: the seeded cycle stays fresh for them."""
    monkeypatch.setenv("OT_MAX_LAG", "30d")


def test_a_failed_job_is_mailed_and_posted_once_then_its_return_to_ok(pair, monkeypatch,
                                                                    quiet_freshness, caplog):
    seed(pair)
    with smtp_server() as mail, webhook_server() as hook:
        monkeypatch.setenv("OT_NOTIFY", f"{mail.url()} {hook.url()}")
        t0 = utcnow()
        run_id = record_run(pair, "cycle", "failed",
                            "SourceUnavailable: connecting to the source failed after 5 attempts")
        caplog.set_level(logging.INFO)
        first = evaluate(warehouse=pair.warehouse_url, now=t0)
        assert first.problems == ["job:cycle"]
        assert [s.error for s in first.sent] == [None, None]
        assert len(mail.mails) == 1 and len(hook.posts) == 1
        subject = mail.mails[0]["Subject"]
        assert subject == f"ot: job cycle failed (run {run_id})"
        text = mail.texts()[0]
        assert "FAILING: job cycle failed" in text and "SourceUnavailable" in text
        assert "Next: `ot runs --job cycle`" in text
        assert hook.posts[0]["title"] == subject and "SourceUnavailable" in hook.posts[0]["message"]
        assert mail.logins == [(mail.user, mail.password)]  # the password reached the server

        # unchanged: nothing more, an hour later or after another failed run
        record_run(pair, "cycle", "failed", "SourceUnavailable: still down")
        again = evaluate(warehouse=pair.warehouse_url, now=t0 + timedelta(hours=1))
        assert again.sent == [] and len(mail.mails) == 1 and len(hook.posts) == 1

        record_run(pair, "cycle", "succeeded")
        back = evaluate(warehouse=pair.warehouse_url, now=t0 + timedelta(hours=2))
        assert back.problems == [] and len(back.sent) == 2
        assert mail.mails[1]["Subject"] == f"ot: ok again: job cycle failed (run {run_id})"
        assert "OK AGAIN" in hook.posts[1]["message"]
        assert alert_rows(pair) == []  # told both: nothing left to remember
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert mail.password not in logged and "alert sent" in logged


def test_repeats_collapse_into_one_daily_digest(embedded, monkeypatch, quiet_freshness):
    seed(embedded)
    # the checks judged a day after the data: freshness fails for every table
    report = run_checks("2026-03-02T12:00:00Z", warehouse=embedded.warehouse_url,
                        source=embedded.source_url)
    failing = sorted(f"check:{r.check}:{r.subject}" for r in report.failed)
    assert len(failing) >= 3
    record_run(embedded, "maintenance", "abandoned", "abandoned: the run's process ended")
    with webhook_server() as hook:
        monkeypatch.setenv("OT_NOTIFY", hook.url())
        t0 = utcnow()
        first = evaluate(warehouse=embedded.warehouse_url, now=t0)
        assert first.problems == sorted([*failing, "job:maintenance"])
        assert len(hook.posts) == 1  # every new problem in one message
        assert hook.posts[0]["title"].startswith(f"ot: {len(first.problems)} new problems")
        assert hook.posts[0]["message"].count("FAILING: ") == len(first.problems)
        assert "sample: " in hook.posts[0]["message"]

        for hours in (1, 6, 23):
            assert evaluate(warehouse=embedded.warehouse_url,
                            now=t0 + timedelta(hours=hours)).sent == []
        digest = evaluate(warehouse=embedded.warehouse_url, now=t0 + timedelta(hours=25))
        assert [s.kind for s in digest.sent] == ["digest"] and len(hook.posts) == 2
        body = hook.posts[1]["message"]
        assert hook.posts[1]["title"] == \
            f"ot daily digest: {len(first.problems)} problems still failing"
        assert body.count("STILL FAILING since") == len(first.problems)
        assert evaluate(warehouse=embedded.warehouse_url,
                        now=t0 + timedelta(hours=30)).sent == []
        assert len(evaluate(warehouse=embedded.warehouse_url,
                            now=t0 + timedelta(hours=49)).sent) == 1
        assert len(hook.posts) == 3


def test_a_destination_that_is_down_is_logged_retried_and_delivered_when_back(
        embedded, monkeypatch, quiet_freshness, caplog):
    seed(embedded)
    for var, value in embedded.env().items():  # after_job reads the environment, as in a run
        monkeypatch.setenv(var, value)
    down = free_port()
    with webhook_server() as hook:
        monkeypatch.setenv("OT_NOTIFY", f"json://127.0.0.1:{down}/hook {hook.url()}")
        record_run(embedded, "rotate_periods", "failed", "TerminalError: disk full")
        caplog.set_level(logging.WARNING)
        alerts.after_job("rotate_periods")  # what the runner calls: never raises
        assert len(hook.posts) == 1
        assert any("not delivered" in r.getMessage() for r in caplog.records)
        rows = {r["alert_key"]: r for r in alert_rows(embedded) if r["sent_state"] is None}
        assert rows["job:rotate_periods"]["attempts"] == 1
        assert rows["job:rotate_periods"]["last_error"]

        alerts.after_job("rotate_periods")  # retried: still down; the working one not repeated
        assert len(hook.posts) == 1
        rows = {r["alert_key"]: r for r in alert_rows(embedded) if r["sent_state"] is None}
        assert rows["job:rotate_periods"]["attempts"] == 2
        with webhook_server(down) as revived:
            alerts.after_job("rotate_periods")
            assert len(revived.posts) == 1 and "disk full" in revived.posts[0]["message"]
        assert len(hook.posts) == 1
        assert all(r["sent_state"] == "failing" and r["attempts"] == 0
                   for r in alert_rows(embedded))


def test_after_job_never_raises_on_a_bad_setting_or_an_unreachable_warehouse(monkeypatch, caplog):
    monkeypatch.setenv("OT_NOTIFY", "json://127.0.0.1:9/x")
    monkeypatch.setenv("OT_WAREHOUSE_URL", "postgresql+psycopg2://ot@127.0.0.1:9/nowhere")
    caplog.set_level(logging.WARNING)
    alerts.after_job("cycle")
    monkeypatch.setenv("OT_NOTIFY", "nonsense-scheme://whatever")
    alerts.after_job("cycle")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("ot")]
    assert len(messages) == 2 and all("alerts not evaluated" in m for m in messages)
    # after a job, one attempt: the job's exit is not held up by the warehouse's retries
    assert "failed after 1 attempt (" in messages[0]
    assert not any("whatever" in r.getMessage() for r in caplog.records)  # apprise's too
    assert "not an Apprise URL" in messages[1] and "whatever" not in messages[1]


def test_notify_test_says_which_destination_worked_without_showing_secrets(tmp_path):
    with smtp_server() as mail:
        urls = tmp_path / "notify.urls"
        down = f"json://127.0.0.1:{free_port()}/hooks/abcdefghijklmnopqrstuvwxyz"
        urls.write_text(f"# where alerts go\n{mail.url()}\n\n{down}\n")
        res = CliRunner().invoke(main, ["notify", "test"], env={"OT_NOTIFY_FILE": str(urls)})
        assert res.exit_code == 1, res.output
        lines = res.stdout.splitlines()
        assert lines[0].startswith("ok     mailto://alerts:") and "127.0.0.1" in lines[0]
        assert lines[1].startswith("FAILED json://127.0.0.1")
        assert mail.password not in res.output and "abcdefghijklmnopqrstuvwxyz" not in res.output
        assert [m["Subject"] for m in mail.mails] == ["ot: test alert"]

        res = CliRunner().invoke(main, ["notify", "test", "--json"],
                                 env={"OT_NOTIFY": mail.url()})
        assert res.exit_code == 0, res.output
        assert [r["ok"] for r in json.loads(res.stdout)] == [True]
        assert mail.password not in res.stdout


def test_destinations_from_the_config_take_secrets_from_the_environment(tmp_path, monkeypatch):
    from support.configs import base_config, write_config

    from ot_core.jobs.notify import destinations

    with webhook_server() as hook:
        data = base_config()
        data["alerts"] = {"notify": [f"json://ot:${{OT_TEST_HOOK_PW}}@127.0.0.1:{hook.port}/h"]}
        path = write_config(tmp_path, data)
        res = CliRunner().invoke(main, ["notify", "test", "--config", str(path)])
        assert res.exit_code == 2 and "OT_TEST_HOOK_PW" in res.stderr  # named, not set
        monkeypatch.setenv("OT_TEST_HOOK_PW", "hook-Secret-42")
        res = CliRunner().invoke(main, ["notify", "test", "--config", str(path)])
        assert res.exit_code == 0, res.output
        assert "hook-Secret-42" not in res.output and len(hook.posts) == 1
        dest = destinations(parse_config(data))[0]
        assert "hook-Secret-42" in dest.url and "hook-Secret-42" not in dest.shown


def test_no_destination_is_a_usage_error_for_notify_test_and_a_no_op_elsewhere(embedded):
    res = CliRunner().invoke(main, ["notify", "test"], env=embedded.env())
    assert res.exit_code == 2 and "OT_NOTIFY" in res.stderr
    res = CliRunner().invoke(main, ["notify", "run"], env=embedded.env())
    assert res.exit_code == 0 and "no alert destination" in res.stdout


def test_a_failing_job_run_alerts_and_a_down_destination_changes_nothing(embedded):
    """The whole path: `ot run` fails its job, the runner evaluates after releasing the lock,
    the webhook receives the failure; the down destination leaves the exit code alone."""
    import subprocess
    import sys

    seed(embedded)
    with webhook_server() as hook:
        env = embedded.process_env(
            OT_NOTIFY=f"json://127.0.0.1:{free_port()}/down {hook.url()}", OT_MAX_LAG="30d",
            OT_LOG_FORMAT="json")
        res = subprocess.run([sys.executable, "-m", "ot_core.cli", "run", "daily_monitoring",
                              "-p", "as_of", "2026-03-02T12:00:00Z", "--json"],
                             capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 1, res.stderr  # the checks failed: exit as without alerts
        run = json.loads(res.stdout.splitlines()[-1])
        assert run["status"] == "failed" and run["error"].startswith("MonitoringFailed")
        assert len(hook.posts) == 1
        message = hook.posts[0]["message"]
        assert f"FAILING: job daily_monitoring failed (run {run['run_id']})" in message
        assert "FAILING: check FRESHNESS_LAG failing on ecs_order_info" in message
        logged = [json.loads(line) for line in res.stderr.splitlines() if line.strip()]
        assert any("not delivered" in e["message"] for e in logged)  # the down one: logged
        events = {e["event"]: e for e in logged if "event" in e}
        assert events["job_started"]["run_id"] == events["job_finished"]["run_id"] == \
            run["run_id"]
        assert events["job_finished"]["status"] == "failed"
        assert events["job_finished"]["job"] == "daily_monitoring"


def test_a_version_3_warehouse_gains_the_alert_table(pair, monkeypatch, quiet_freshness):
    """A warehouse made before alerts (schema version 3, no ot_alerts) is upgraded by the
    next write (here the run's record): the table is created, the version row says 4, the
    data is kept, and alerts are kept there."""
    from ot_core.db.schema import SCHEMA_VERSION

    seed(pair)
    cfg = load_config()
    db = open_database("warehouse", pair.warehouse_url)
    tables = tables_for(cfg, db.backend)
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {db.backend.qualified(cfg.schemas.control, 'ot_alerts')}")
        conn.execute(sa.update(tables.schema_version).values(version=3))
    db.dispose()
    record_run(pair, "cycle", "failed", "SourceUnavailable: down")
    with webhook_server() as hook:
        monkeypatch.setenv("OT_NOTIFY", hook.url())
        assert evaluate(warehouse=pair.warehouse_url).problems == ["job:cycle"]
        assert len(hook.posts) == 1
    assert [r["alert_key"] for r in alert_rows(pair)] == ["job:cycle"]
    db = open_database("warehouse", pair.warehouse_url)
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(tables.schema_version.c.version)).scalar_one() == \
            SCHEMA_VERSION == 4
        assert conn.execute(sa.select(sa.func.count()).select_from(
            tables.raw["ecs_order_info"])).scalar_one() > 0
    db.dispose()


def test_a_stalled_pipeline_is_alerted_and_its_recovery_too(pair, monkeypatch):
    seed(pair)
    monkeypatch.setenv("OT_MAX_LAG", "1h")
    with webhook_server() as hook:
        monkeypatch.setenv("OT_NOTIFY", hook.url())
        stalled = evaluate(warehouse=pair.warehouse_url, now=utcnow() + timedelta(hours=2))
        tables = sorted(load_config().tables)
        assert stalled.problems == [f"freshness:{t}" for t in tables]
        assert len(hook.posts) == 1 and hook.posts[0]["title"].startswith("ot: 3 new problems")
        body = hook.posts[0]["message"]
        assert body.count("is stale: last cycle") == 3 and "`ot runs --job cycle`" in body
        assert "longer than the limit 60 min (OT_MAX_LAG)" in body

        run_cycle("2026-03-01T12:15:00Z", source=pair.source_url, warehouse=pair.warehouse_url)
        back = evaluate(warehouse=pair.warehouse_url)
        assert back.problems == [] and len(hook.posts) == 2
        assert hook.posts[1]["message"].count("OK AGAIN: table ") == 3


def test_notify_run_exits_75_when_the_warehouse_is_unreachable(tmp_path):
    from support.configs import base_config, write_config

    data = base_config()
    data["cycle"].update(source_retries=1, retry_backoff_seconds=0.05)
    path = write_config(tmp_path, data)
    res = CliRunner().invoke(main, ["notify", "run", "--config", str(path)], env={
        "OT_NOTIFY": "json://127.0.0.1:9/h",
        "OT_WAREHOUSE_URL": "postgresql+psycopg2://ot@127.0.0.1:9/nowhere"})
    assert res.exit_code == 75 and "transient" in res.stderr, res.output


def test_a_destination_that_hangs_is_given_up_after_the_send_timeout(embedded, monkeypatch,
                                                                    quiet_freshness):
    """A destination that accepts the connection and never answers is given up after
    alerts.send_timeout_seconds (the test would hang otherwise); the others still get it."""
    from alert_servers import silent_server
    from support.configs import base_config

    seed(embedded)
    data = base_config()
    data["alerts"] = {"send_timeout_seconds": 1}
    cfg = parse_config(data)
    record_run(embedded, "cycle", "failed", "SourceUnavailable: down")
    with silent_server() as port, webhook_server() as hook:
        monkeypatch.setenv("OT_NOTIFY", f"json://127.0.0.1:{port}/h mailto://127.0.0.1:{port}"
                                        f"?from=ot@example.com&to=oncall@example.com {hook.url()}")
        outcome = evaluate(cfg, warehouse=embedded.warehouse_url)
        assert [bool(s.error) for s in outcome.sent] == [True, True, False]
        assert len(hook.posts) == 1


def test_one_evaluation_at_a_time(pair, monkeypatch, quiet_freshness):
    """Two jobs ending together must not both send the same change: an evaluation holds a
    lock of its own; the one that finds it held sends nothing (the next one will)."""
    from ot_core.db.warehouse import Warehouse
    from ot_core.errors import JobLocked

    seed(pair)
    record_run(pair, "cycle", "failed", "SourceUnavailable: down")
    with webhook_server() as hook:
        monkeypatch.setenv("OT_NOTIFY", hook.url())
        with Warehouse.open(None, pair.warehouse_url) as wh, \
                wh.hold(alerts.LOCK, 300, "another evaluation"):
            with pytest.raises(JobLocked):
                evaluate(warehouse=pair.warehouse_url)
        assert hook.posts == []
        assert evaluate(warehouse=pair.warehouse_url).problems == ["job:cycle"]
        assert len(hook.posts) == 1


def test_crontab_adds_the_watch_line_on_request():
    plain = CliRunner().invoke(main, ["crontab"])
    watched = CliRunner().invoke(main, ["crontab", "--notify", "*/5 * * * *"])
    assert plain.exit_code == 0 and watched.exit_code == 0, watched.output
    extra = watched.output.splitlines()[len(plain.output.splitlines()):]
    assert len(extra) == 1 and extra[0].startswith("*/5 * * * * ")
    assert " notify run >> " in extra[0] and "notify run" not in plain.output
    bad = CliRunner().invoke(main, ["crontab", "--notify", "every 5 minutes"])
    assert bad.exit_code == 2 and "5-field cron" in bad.stderr

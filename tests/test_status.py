"""``ot status``: one screen (and one JSON document) of freshness, jobs, failing checks, open
exceptions and locks, with exit codes a scheduler or a container health check acts on:
0 healthy, 1 a check or the freshness limit breached, 75 the warehouse unreachable."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import sqlalchemy as sa
from click.testing import CliRunner
from support.configs import base_config, write_config
from test_alerts import record_run, seed

from ot_core.cli import main
from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.db.schema import tables_for
from ot_core.jobs import records
from ot_core.jobs.alerts import problems
from ot_core.jobs.status import pipeline_status
from ot_core.quality.monitor import run_checks
from ot_core.timeutil import utcnow


def status(pair, *args: str, **env: str):
    return CliRunner().invoke(main, ["status", *args], env={**pair.env(), **env})


def test_a_fresh_pipeline_is_healthy_and_a_stalled_one_breaches(pair):
    seed(pair)
    res = status(pair, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["healthy"] is True and doc["breaches"] == []
    assert {t["table"] for t in doc["tables"]} == set(load_config().tables)
    assert all(t["rows_merged_last_hour"] > 0 and not t["late"] for t in doc["tables"])
    assert all(t["extracted_until"] == "2026-03-01T12:00:00Z" for t in doc["tables"])
    assert doc["max_lag_seconds"] == 4 * 15 * 60  # default: four cycle intervals
    assert [j["job"] for j in doc["jobs"]] == list(
        ["cycle", "rotate_periods", "daily_monitoring", "maintenance", "monthly_compare"])

    time.sleep(2.1)  # no cycle since: stalled for a limit of one second
    res = status(pair, "--json", OT_MAX_LAG="1s")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["healthy"] is False and all(t["late"] for t in doc["tables"])
    assert any("no cycle for" in b and "limit 1 s" in b for b in doc["breaches"])
    text = status(pair, OT_MAX_LAG="1s")
    assert text.exit_code == 1 and text.stdout.splitlines()[1].startswith("BREACHED: table ")
    assert "LATE" in text.stdout


def test_status_shows_jobs_checks_exceptions_and_locks(pair, monkeypatch):
    seed(pair)
    monkeypatch.setenv("OT_MAX_LAG", "30d")
    cfg = load_config()
    now = utcnow().replace(microsecond=0)
    failed = record_run(pair, "monthly_compare", "failed", "CompareFailed: 12 rows differ")
    record_run(pair, "maintenance", "succeeded")
    # a cycle run holding the lock for two hours, and the run that found it busy
    db = open_database("warehouse", pair.warehouse_url)
    running = records.start_run(db, cfg, "cycle", {}, now - timedelta(hours=2), None)
    records.record_skipped(db, cfg, "cycle", {}, now, "skipped: already running: run 3")
    # two routing gaps, one of them ten days old
    t = tables_for(cfg, db.backend).exceptions
    with db.engine.begin() as conn:
        for n, age in ((1, 10), (2, 1)):
            conn.execute(sa.insert(t).values(
                exception_id=n, order_id=100 + n, source_table="uni_tracking_info", row_key=n,
                exception_type="ARCHIVE_ROUTING_GAP",
                detected_at=(now - timedelta(days=age)).replace(tzinfo=None)))
    db.dispose()
    run_checks("2026-03-02T12:00:00Z", warehouse=pair.warehouse_url, source=pair.source_url)

    s = pipeline_status(warehouse=pair.warehouse_url, now=now)
    jobs = {j.job: j for j in s.jobs}
    assert jobs["monthly_compare"].failing_run_id == failed
    assert jobs["maintenance"].failing_status is None and jobs["maintenance"].last_status == \
        "succeeded"
    assert jobs["cycle"].last_status == "skipped" and "past the job's timeout" in jobs["cycle"].stuck
    assert [(lk.job, lk.run_id) for lk in s.locks] == [("cycle", running)]
    assert 7190 <= s.locks[0].held_seconds <= 7260
    assert {c.check for c in s.checks_failing} >= {"FRESHNESS_LAG"}
    [gaps] = s.exceptions
    assert (gaps.type, gaps.open, gaps.older_than_limit) == ("ARCHIVE_ROUTING_GAP", 2, 1)
    assert s.exit_code == 1 and any("FRESHNESS_LAG" in b for b in s.breaches)

    keys = set(problems(s))
    assert {"job:monthly_compare", "lock:cycle", "exceptions:ARCHIVE_ROUTING_GAP"} <= keys
    assert "job:maintenance" not in keys and "job:cycle" not in keys

    res = status(pair)
    assert res.exit_code == 1
    for needle in ("CompareFailed: 12 rows differ", "past the job's timeout", "ARCHIVE_ROUTING_GAP",
                   f"run {running}, pid", "FRESHNESS_LAG"):
        assert needle in res.stdout, needle


def test_an_unreachable_warehouse_exits_75(tmp_path):
    data = base_config()
    data["cycle"].update(source_retries=1, retry_backoff_seconds=0.05)
    path = write_config(tmp_path, data)
    res = CliRunner().invoke(main, ["status", "--json", "--config", str(path)], env={
        "OT_WAREHOUSE_URL": "postgresql+psycopg2://ot:pw-Not-Shown@127.0.0.1:9/nowhere"})
    assert res.exit_code == 75, res.output
    assert res.stdout == "" and "transient" in res.stderr and "pw-Not-Shown" not in res.stderr


def test_status_writes_nothing(embedded):
    seed(embedded)
    before = (embedded.tmp / "warehouse.duckdb").stat().st_mtime_ns
    assert status(embedded).exit_code == 0
    assert (embedded.tmp / "warehouse.duckdb").stat().st_mtime_ns == before


def test_the_pipeline_health_notebook_reads_the_same_status(pair, monkeypatch):
    from ot_core.workbench import explore
    from ot_core.workbench.present import Message
    from ot_core.workbench.widgets import PipelineHealth

    seed(pair)
    failed = record_run(pair, "monthly_compare", "failed", "CompareFailed: 12 rows differ")
    now = utcnow() + timedelta(hours=3)  # stalled: three hours without a cycle
    wb = explore.open_workbench(load_config(), pair.warehouse_url)
    health = PipelineHealth(wb, now=now)
    same = pipeline_status(warehouse=pair.warehouse_url, now=now)
    assert health.status is not None
    shown, read = health.status.as_json(), same.as_json()
    assert shown.pop("warehouse").startswith(read.pop("warehouse"))  # the view reads read-only
    assert shown == read
    verdicts = [m.text for m in health.shown if isinstance(m, Message)
                and m.text.startswith("**Status**")]
    assert verdicts == ["**Status** (as `ot status`): breached — " + "; ".join(same.breaches)]
    jobs = health.frames["jobs"].set_index("job")
    assert jobs.loc["monthly_compare", "note"] == f"run {failed} failed"
    wb.close()


def test_an_embedded_warehouse_held_by_another_process_exits_75(embedded, tmp_path):
    """DuckDB admits one process per file: while another holds it, the status cannot be
    read — transient, 75, retried by whatever runs the health check."""
    import subprocess
    import sys

    seed(embedded)
    data = base_config()
    data["cycle"].update(source_retries=1, retry_backoff_seconds=0.05)
    path = write_config(tmp_path, data)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(embedded.tmp / "warehouse.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = status(embedded, "--config", str(path))
        assert res.exit_code == 75, res.output
        assert "transient" in res.stderr
    finally:
        holder.kill()
        holder.wait()
    assert status(embedded, "--config", str(path)).exit_code == 0

"""``ot demo`` as a newcomer meets it, as a subprocess on the embedded files: the README's
first command run twice succeeds both times and says what it did; an older demo is
advanced to now; ``--fresh`` starts over, and refuses what it must not delete."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from filelock import FileLock

from ot_core.db.connect import open_database
from ot_core.simulate import ensure_source

OT = [sys.executable, "-m", "ot_core"]
SMALL = ["--days", "2", "--orders-per-day", "60"]


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_") or k.startswith("OT_TEST_")}
    env.update(OT_DATA_DIR=str(data), **extra)
    return env


def ot(data: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(OT + list(args), env=_env(data, **extra), capture_output=True,
                          text=True, timeout=600)


def marts(data: Path) -> dict[str, int]:
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        return {t: con.execute(f"SELECT COUNT(*) FROM settlement_ods.{t}").fetchone()[0]
                for t in ("mart_ecs_order_info", "mart_uni_tracking_info",
                          "mart_uni_tracking_spath")}
    finally:
        con.close()


def quarter_hour_ago(n: int) -> str:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    now -= timedelta(minutes=now.minute % 15)
    return (now - timedelta(minutes=15 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_second_demo_succeeds_and_says_there_is_nothing_new(tmp_path):
    first = ot(tmp_path, "demo", *SMALL)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("new demo ")
    before = marts(tmp_path)
    second = ot(tmp_path, "demo", *SMALL)
    assert second.returncode == 0, second.stderr
    assert "`ot demo --fresh`" in second.stdout and second.stderr.count("\n") <= 1
    if second.stdout.startswith("advanced"):  # the clock crossed a quarter hour in between
        assert marts(tmp_path)["mart_ecs_order_info"] >= before["mart_ecs_order_info"]
        return
    assert second.stdout.startswith("up to date the existing demo already reaches")
    assert "cycles     none needed" in second.stdout
    assert marts(tmp_path) == before


@pytest.mark.slow
def test_an_older_demo_is_advanced_to_now(tmp_path):
    """A demo written two hours ago (source and warehouse): a new run adds the orders of the
    two hours and the cycles that load them, and says from where to where."""
    then = quarter_hour_ago(8)
    sim = ot(tmp_path, "simulate", "--until", then, "--days", "2", "--orders-per-day", "600")
    assert sim.returncode == 0, sim.stderr
    cyc = ot(tmp_path, "cycle", "--catch-up", "--as-of", then, "--step", "6h")
    assert cyc.returncode == 0, cyc.stderr
    before = marts(tmp_path)
    res = ot(tmp_path, "demo", *SMALL)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith(f"advanced   the existing demo from {then} to "), res.stdout
    assert int(first.split(": ")[1].split(" new orders")[0].replace(",", "")) > 0
    assert "cycles     " in res.stdout and "none needed" not in res.stdout
    after = marts(tmp_path)
    assert after["mart_ecs_order_info"] > before["mart_ecs_order_info"]


@pytest.mark.slow
def test_fresh_starts_over(tmp_path):
    assert ot(tmp_path, "demo", "--days", "3", "--orders-per-day", "200").returncode == 0
    big = marts(tmp_path)
    res = ot(tmp_path, "demo", "--fresh", "--days", "2", "--orders-per-day", "40")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("removed ") and "\nnew demo " in res.stdout
    small = marts(tmp_path)
    assert small["mart_ecs_order_info"] < big["mart_ecs_order_info"] / 3


@pytest.mark.slow
def test_fresh_waits_for_a_running_job_and_deletes_nothing(tmp_path):
    assert ot(tmp_path, "demo", *SMALL).returncode == 0
    before = marts(tmp_path)
    with FileLock(str(tmp_path / "warehouse.duckdb.cycle.lock")):  # a cycle is running
        res = ot(tmp_path, "demo", "--fresh")
    assert res.returncode == 75, res.stderr
    assert "a job is running" in res.stderr and "warehouse.duckdb.cycle.lock" in res.stderr
    assert (tmp_path / "source.sqlite").exists() and marts(tmp_path) == before


def test_fresh_never_deletes_a_database_named_by_url(tmp_path):
    wh = tmp_path / "elsewhere.duckdb"
    res = ot(tmp_path, "demo", "--fresh", OT_WAREHOUSE_URL=f"duckdb:///{wh}")
    assert res.returncode == 2, res.stderr
    assert "OT_WAREHOUSE_URL is set" in res.stderr


def test_a_source_holding_orders_it_did_not_write_is_refused(tmp_path):
    """A source with orders but no simulation state is someone's data: no synthetic rows go in."""
    url = f"sqlite:///{tmp_path / 'real.sqlite'}"
    db = open_database("source", url)
    try:
        ensure_source(db)
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO ecs_order_info (order_id, order_sn, partner_id, "
                                 "add_time) VALUES (1, 'SN1', 1000, 1700000000)"))
    finally:
        db.dispose()
    res = ot(tmp_path, "demo", *SMALL, OT_SOURCE_URL=url)
    assert res.returncode == 2, res.stderr
    assert "holds orders that `ot simulate` did not write" in res.stderr
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM ecs_order_info")).scalar_one() == 1

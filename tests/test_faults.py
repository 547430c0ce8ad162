"""Faults and bad input an operator meets: every command answers with ONE line on stderr that
says what to do, no traceback, and the documented exit code (docs/errors.md#exit-codes):
2 bad usage or configuration, 3 terminal, 75 transient (retry later). Nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_bad_input import base_config, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate

COMMANDS = [["cycle"], ["compare", "--table", "ecs"], ["rotate"], ["exceptions", "list"], ["runs"],
            ["refresh-ecs", "--dry-run"]]


def _fast_config(tmp_path: Path) -> str:
    data = base_config()
    data["cycle"].update(source_retries=1, retry_backoff_seconds=0.05)
    return str(write_config(tmp_path, data, "fast.yml"))


def _one_line(res, code: int, *needles: str) -> str:
    err = res.stderr.strip()
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def seeded(embedded, tmp_path):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3,
             source=embedded.source_url)
    run_cycle("2026-03-01T12:00:00Z", config=parse_config(base_config()),
              source=embedded.source_url, warehouse=embedded.warehouse_url)
    return embedded


@pytest.mark.servers
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: "-".join(a))
def test_an_unreachable_warehouse_is_transient_everywhere(servers, tmp_path, args):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=10, seed=3,
             source=servers.source_url)
    env = {**servers.env(), "OT_WAREHOUSE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/x"}
    res = CliRunner().invoke(main, [*args, "--config", _fast_config(tmp_path)], env=env)
    _one_line(res, 75, "transient", "127.0.0.1:1", "failed after 2 attempts")


@pytest.mark.servers
def test_a_missing_warehouse_database_is_terminal(servers, tmp_path):
    url = servers.warehouse_url.rsplit("/", 1)[0] + "/ot_no_such_database"
    res = CliRunner().invoke(main, ["exceptions", "list", "--config", _fast_config(tmp_path)],
                             env={**servers.env(), "OT_WAREHOUSE_URL": url})
    _one_line(res, 3, "ot_no_such_database", "OT_WAREHOUSE_URL")


_HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("args", [["cycle", "--as-of", "2026-03-01T12:15:00Z"],
                                  ["compare", "--table", "ecs"], ["exceptions", "list"],
                                  ["refresh-ecs", "--dry-run"]], ids=lambda a: a[0])
def test_a_warehouse_file_held_by_another_process_is_transient(seeded, tmp_path, args):
    path = seeded.warehouse_url.removeprefix("duckdb:///")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, path], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        res = CliRunner().invoke(main, [*args, "--config", _fast_config(tmp_path)],
                                 env=seeded.env())
        _one_line(res, 75, "transient", "warehouse")
        assert time.monotonic() - started < 60
    finally:
        holder.kill()
        holder.wait()
    again = CliRunner().invoke(main, [*args, "--config", _fast_config(tmp_path)],
                               env=seeded.env())
    assert again.exit_code == 0, again.output  # free again: the same command just works


def test_a_garbage_warehouse_file_is_one_line(seeded, tmp_path):
    path = Path(seeded.warehouse_url.removeprefix("duckdb:///"))
    path.write_bytes(os.urandom(4096))
    for args in (["cycle", "--as-of", "2026-03-01T12:15:00Z"], ["exceptions", "list"]):
        res = CliRunner().invoke(main, [*args, "--config", _fast_config(tmp_path)],
                                 env=seeded.env())
        assert res.exit_code in (3, 75), res.output
        _one_line(res, res.exit_code, "ot: ")


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_disk_full_is_one_line_and_the_next_cycle_recovers(embedded, tmp_path):
    small = tmp_path / "small"
    if not _mount_tmpfs(small, "size=256k"):  # a DuckDB file needs more than a block or two
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mount -t tmpfs is not permitted here; the disk-full test needs it")
        pytest.skip("mount -t tmpfs is not permitted here (needs root)")
    try:
        simulate("2026-03-03", start="2026-03-01", orders_per_day=400, seed=3,
                 source=embedded.source_url)
        env = {**embedded.env(), "OT_WAREHOUSE_URL": f"duckdb:///{small}/wh.duckdb"}
        res = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-03T00:00:00Z", "--config",
                                        _fast_config(tmp_path)], env=env)
        assert res.exit_code in (3, 75), res.output
        _one_line(res, res.exit_code, "No space left on device", "free space")
    finally:
        subprocess.run(["umount", str(small)], check=False)
    # with room again (the same path, now on the ordinary disk) the cycle completes
    ok = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-03T00:00:00Z", "--config",
                                   _fast_config(tmp_path)],
                            env={**embedded.env(), "OT_WAREHOUSE_URL": f"duckdb:///{small}/wh.duckdb"})
    assert ok.exit_code == 0, ok.output


def test_a_read_only_filesystem_is_one_line(embedded, tmp_path):
    ro = tmp_path / "ro"
    if not _mount_tmpfs(ro, "ro,size=1m"):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mount -t tmpfs is not permitted here; the read-only test needs it")
        pytest.skip("mount -t tmpfs is not permitted here (needs root)")
    try:
        simulate("2026-03-02", start="2026-03-01", orders_per_day=10, seed=3,
                 source=embedded.source_url)
        env = {**embedded.env(), "OT_WAREHOUSE_URL": f"duckdb:///{ro}/wh.duckdb"}
        res = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-01T12:00:00Z"], env=env)
        assert res.exit_code in (3, 75), res.output
        _one_line(res, res.exit_code, "read-only", "writable place")
    finally:
        subprocess.run(["umount", str(ro)], check=False)


@pytest.mark.parametrize("args, needle", [
    (["compare", "--table", "ecs", "--month", "9999-12"], "9999-12"),
    (["compare", "--table", "ecs", "--key-range", "0:99999999999999999999"], "BIGINT"),
    (["cycle", "--as-of", "0001-01-01"], "0001-01-01"),
    (["cycle", "--catch-up", "--step", "0m"], "zero"),
])
def test_bad_values_are_usage_errors(seeded, args, needle):
    res = CliRunner().invoke(main, args, env=seeded.env())
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_a_missing_sqlite_source_is_not_created(tmp_path):
    src = tmp_path / "nope" / "deeper" / "source.sqlite"
    res = CliRunner().invoke(main, ["cycle"], env={
        "OT_SOURCE_URL": f"sqlite:///{src}", "OT_WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb"})
    _one_line(res, 2, str(src), "ot simulate")
    assert not src.parent.parent.exists()


def test_an_unencoded_at_in_a_password_is_one_line_and_shows_nothing_of_it(tmp_path):
    res = CliRunner().invoke(main, ["cycle"], env={
        "OT_SOURCE_URL": "mysql+pymysql://etl:s3cr@tword@127.0.0.1:1/ecs",
        "OT_WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb"})
    err = _one_line(res, 2, "%40")
    for part in ("s3cr", "tword"):
        assert part not in res.output, err


@pytest.mark.servers
def test_a_bogus_driver_option_is_one_line(servers, tmp_path):
    res = CliRunner().invoke(main, ["cycle", "--config", _fast_config(tmp_path)], env={
        **servers.env(), "OT_SOURCE_URL": servers.source_url + "?charset=bogus"})
    assert res.exit_code in (2, 3), res.output
    _one_line(res, res.exit_code, "ot: ")

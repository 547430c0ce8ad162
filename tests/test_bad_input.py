"""Bad input stops the pipeline before any work, with one clear message and nothing written.

A source table missing a contracted column, an unreachable source, a malformed ``--as-of``,
a wrong configuration value: each names what is wrong, leaves the warehouse as it was
(no raw row, no mart row, no batch, no watermark move) and never leaks a password.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from support.configs import base_config, drop_column, nothing_landed, warehouse_state, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.db.connect import with_retries
from ot_core.errors import ConfigError, ContractError, SourceUnavailable
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate

OT = str(Path(sys.executable).with_name("ot"))
UNREACHABLE = "mysql+pymysql://root@127.0.0.1:1/x"
SECRET = "Sup3rSecretPw"


# -- (a) a source table missing a contracted column ------------------------------------------
@pytest.mark.parametrize("table, column", [("uni_tracking_spath", "path_location"),
                                           ("ecs_order_info", "currency")])
def test_missing_column_stops_before_any_write(pair, table, column):
    cfg = parse_config(base_config())
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3, source=pair.source_url)
    run_cycle("2026-03-01T12:00:00Z", config=cfg, source=pair.source_url,
              warehouse=pair.warehouse_url)
    before = warehouse_state(pair.warehouse_url)
    assert before["batches"] and before["watermarks"]
    drop_column(pair.source_url, table, column)
    with pytest.raises(ContractError) as err:
        run_cycle("2026-03-02T00:00:00Z", config=cfg, source=pair.source_url,
                  warehouse=pair.warehouse_url)
    assert repr(table) in str(err.value) and repr(column) in str(err.value)
    # the tables before the broken one in the cycle's order landed nothing either
    assert warehouse_state(pair.warehouse_url) == before


def test_missing_column_via_cli(embedded, tmp_path):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3,
             source=embedded.source_url)
    drop_column(embedded.source_url, "uni_tracking_spath", "pathTime")
    cfg = write_config(tmp_path, base_config())
    res = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-02", "--config", str(cfg)],
                             env=embedded.env())
    assert res.exit_code == 3, res.output  # terminal: fix the source
    assert "'uni_tracking_spath'" in res.stderr and "'pathTime'" in res.stderr
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert nothing_landed(warehouse_state(embedded.warehouse_url))


# -- (b) an unreachable source: bounded retries with backoff, then SourceUnavailable ----------
def test_unreachable_source_retries_then_gives_up(tmp_path, caplog):
    data = base_config()
    data["cycle"].update(source_retries=2, retry_backoff_seconds=0.01)
    cfg = parse_config(data)
    wh = f"duckdb:///{tmp_path}/wh.duckdb"
    caplog.set_level(logging.INFO, logger="ot")  # retries are logged at INFO (-v)
    with pytest.raises(SourceUnavailable) as err:
        run_cycle("2026-03-02", config=cfg, source=UNREACHABLE, warehouse=wh)
    retries = [r for r in caplog.records if "transient failure" in r.getMessage()]
    assert len(retries) == 2
    assert [f"retry {i}/2 in {0.01 * 2 ** (i - 1):.1f}s" in r.getMessage()
            for i, r in enumerate(retries, 1)] == [True, True]
    msg = str(err.value)
    assert "after 3 attempts" in msg and "127.0.0.1:1" in msg and "OT_SOURCE_URL" in msg
    assert nothing_landed(warehouse_state(wh))


# -- (c) a malformed --as-of ------------------------------------------------------------------
@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-11-26T25:00"])
def test_malformed_as_of_is_a_usage_error(embedded, value):
    res = CliRunner().invoke(main, ["cycle", "--as-of", value], env=embedded.env())
    assert res.exit_code == 2
    assert res.stderr.startswith("ot: error: ") and res.stderr.count("\n") == 1
    assert "--as-of" in res.stderr and value in res.stderr and "`ot cycle --help`" in res.stderr
    assert nothing_landed(warehouse_state(embedded.warehouse_url))


# -- (d) configuration errors -----------------------------------------------------------------
def _bad(edit) -> dict:
    data = base_config()
    edit(data)
    return data


BAD_CONFIGS = {
    "unknown key": (lambda d: d["cycle"].update(chunk_size=10), "cycle.chunk_size", "10"),
    "bad strategy": (lambda d: d["tables"]["uni_tracking_info"]["cdc"].update(strategy="magic"),
                     "tables.uni_tracking_info.cdc.strategy", "'magic'"),
    "bad identifier": (lambda d: d["schemas"].update(raw="Settlement-Public"),
                       "schemas.raw", "'Settlement-Public'"),
    "bad column": (lambda d: d["tables"]["uni_tracking_spath"].update(archive_column="path_time"),
                   "archive_column", "'path_time'"),
    "lookback >= raw trim": (
        lambda d: d["tables"]["ecs_order_info"].update(
            raw_trim_hours=1, cdc={"strategy": "timestamp", "column": "add_time",
                                   "lookback_seconds": 3600}),
        "ecs_order_info.cdc.lookback_seconds", "3600"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_error_names_key_and_value(case):
    edit, key, value = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as err:
        parse_config(_bad(edit), "pipeline.yml")
    assert key in str(err.value) and value in str(err.value), str(err.value)


@pytest.mark.parametrize("case", ["unknown key", "bad identifier", "lookback >= raw trim"])
def test_config_error_via_cli_writes_nothing(embedded, tmp_path, case):
    edit, key, value = BAD_CONFIGS[case]
    simulate("2026-03-02", start="2026-03-01", orders_per_day=5, seed=3, source=embedded.source_url)
    cfg = write_config(tmp_path, _bad(edit), "bad.yml")
    res = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-02", "--config", str(cfg)],
                             env=embedded.env())
    assert res.exit_code == 2  # configuration
    assert "bad.yml" in res.stderr and key in res.stderr and value in res.stderr
    assert "Traceback" not in res.output
    assert warehouse_state(embedded.warehouse_url) is None


# -- (e) a password in the source URL never reaches the error text ----------------------------
def _ot(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("OT_") or k == "OT_DATA_DIR"}
    full.update(env)
    return subprocess.run([OT, *args], env=full, capture_output=True, text=True, timeout=120)


def test_password_never_in_unreachable_error(tmp_path):
    cfg = base_config()
    cfg["cycle"].update(source_retries=1, retry_backoff_seconds=0.01)
    res = _ot(["-v", "cycle", "--as-of", "2026-03-02", "--config",
               str(write_config(tmp_path, cfg))],
              {"OT_SOURCE_URL": f"mysql+pymysql://etl:{SECRET}@127.0.0.1:1/x",
               "OT_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb"})
    assert res.returncode == 75, res.stderr  # transient: retry later
    assert "transient" in res.stderr and "retry 1/1" in res.stderr  # -v logs the retry
    assert "etl:***@127.0.0.1:1" in res.stderr
    assert SECRET not in res.stderr + res.stdout and "Traceback" not in res.stderr


@pytest.mark.servers
def test_password_never_in_refused_login_error(servers, tmp_path):
    """A wrong password is terminal: one clean line, no retry, no traceback, no secret."""
    url = sa.engine.make_url(servers.source_url).set(password=SECRET)
    res = _ot(["cycle", "--as-of", "2026-03-02", "--config",
               str(write_config(tmp_path, base_config()))],
              {"OT_SOURCE_URL": url.render_as_string(hide_password=False),
               "OT_WAREHOUSE_URL": servers.warehouse_url})
    assert res.returncode == 3  # terminal: no retry helps
    assert "ot: error:" in res.stderr and "Access denied" in res.stderr
    assert SECRET not in res.stderr + res.stdout and "Traceback" not in res.stderr
    assert nothing_landed(warehouse_state(servers.warehouse_url))


@pytest.mark.parametrize("first_failure", [
    ConnectionError("connection refused"),
    # a reader may classify a transient failure itself: retried like any other
    SourceUnavailable("reading the source: lost connection"),
], ids=["driver error", "already classified"])
def test_a_transient_failure_then_success_calls_once_more(first_failure, caplog):
    """The first attempt runs without the retry machinery; a transient failure there is
    tenacity's attempt 1, so the call is made twice in all, not three times."""
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise first_failure
        return "done"

    caplog.set_level(logging.INFO, logger="ot")
    assert with_retries(flaky, what="flaky", retries=3, backoff=0.0, sleep=lambda s: None,
                        error=SourceUnavailable) == "done"
    assert len(calls) == 2
    logged = [r.getMessage() for r in caplog.records if "transient failure" in r.getMessage()]
    assert len(logged) == 1 and "retry 1/3" in logged[0]


def test_a_terminal_first_failure_is_raised_once():
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad SQL")

    with pytest.raises(ValueError, match="bad SQL"):
        with_retries(broken, what="broken", retries=3, backoff=0.0, sleep=lambda s: None)
    assert calls == [1]

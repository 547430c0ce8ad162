"""The pipeline config (the shipped ``ot_core/defaults/pipeline.yml`` or the user's own) is
validated on load: a wrong file stops before any work, naming the key, the value and what
is allowed; a right one becomes one frozen model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ot_core.config import (
    DEFAULT_CONFIG,
    FullRefreshCDC,
    TimestampCDC,
    check_identifier,
    config_path,
    load_config,
    parse_config,
)
from ot_core.contract import CONTRACTS
from ot_core.errors import ConfigError


def data() -> dict:
    return yaml.safe_load(Path(DEFAULT_CONFIG).read_text())


def test_project_config_loads():
    cfg = load_config()
    assert list(cfg.tables) == sorted(CONTRACTS)
    assert cfg.schemas.raw == "settlement_public" and cfg.schemas.mart == "settlement_ods"
    uti = cfg.table("uni_tracking_info")
    assert isinstance(uti.cdc, TimestampCDC) and uti.cdc.column == "update_time"
    assert uti.version_column is None and uti.updated_in_place  # the row read last wins
    assert cfg.table("ecs_order_info").raw_trim_hours == 48
    for name, t in cfg.tables.items():  # every lookback is shorter than its raw window
        assert t.cdc.lookback_seconds < t.raw_trim_hours * 3600, name


def test_lifecycle_switch_and_frozen_model():
    d = data()
    d["lifecycle"]["enabled"] = False
    cfg = parse_config(d)
    assert cfg.lifecycle.enabled is False and load_config().lifecycle.enabled is True
    with pytest.raises(ValidationError):
        cfg.cycle.chunk_rows = 1  # type: ignore[misc]


def test_full_refresh_strategy_is_accepted_without_timestamp_keys():
    d = data()
    d["tables"]["ecs_order_info"]["cdc"] = {"strategy": "full_refresh"}
    assert isinstance(parse_config(d).table("ecs_order_info").cdc, FullRefreshCDC)
    d["tables"]["ecs_order_info"]["cdc"] = {"strategy": "full_refresh", "lookback_seconds": 5}
    with pytest.raises(ConfigError, match=r"ecs_order_info\.cdc\.lookback_seconds"):
        parse_config(d)


@pytest.mark.parametrize("edit, key, value", [
    (lambda d: d["cycle"].update(chunk_rows=10), "cycle.chunk_rows", "10"),
    (lambda d: d["cycle"].update(source_retries=-1), "cycle.source_retries", "-1"),
    (lambda d: d["lifecycle"].update(retention_months=0), "lifecycle.retention_months", "0"),
    (lambda d: d.update(extra={"a": 1}), "extra", ""),
    (lambda d: d["schemas"].update(mart="ods; DROP TABLE x"), "schemas.mart", "DROP TABLE"),
    (lambda d: d["schemas"].update(mart="Settlement"), "schemas.mart", "'Settlement'"),
    (lambda d: d["schemas"].update(mart="settlement_public"), "schemas.raw and schemas.mart", ""),
    (lambda d: d["tables"].update(orders=d["tables"]["ecs_order_info"]), "'orders'", ""),
    (lambda d: d["tables"].pop("uni_tracking_spath"), "'uni_tracking_spath' is missing", ""),
    (lambda d: d["tables"]["uni_tracking_info"]["cdc"].update(column="updated_at"),
     "uni_tracking_info.cdc.column", "'updated_at'"),
    (lambda d: d["tables"]["uni_tracking_info"].update(version_column="status; --"),
     "uni_tracking_info.version_column", "'status; --'"),
    (lambda d: d["tables"]["uni_tracking_spath"].update(raw_trim_hours=0),
     "uni_tracking_spath.raw_trim_hours", "0"),
])
def test_bad_values_name_key_and_value(edit, key, value):
    d = data()
    edit(d)
    with pytest.raises(ConfigError) as err:
        parse_config(d, "pipeline.yml")
    msg = str(err.value)
    assert msg.startswith("pipeline.yml") and key in msg and value in msg, msg


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read.*--config PATH or set OT_CONFIG"):
        load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("tables: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_config_path_precedence(tmp_path, monkeypatch):
    assert config_path() == DEFAULT_CONFIG
    monkeypatch.setenv("OT_CONFIG", str(tmp_path / "env.yml"))
    assert config_path() == tmp_path / "env.yml"
    assert config_path(tmp_path / "cli.yml") == tmp_path / "cli.yml"


@pytest.mark.parametrize("name", ["settlement_ods", "_x", "a1_b2"])
def test_identifiers_allowed(name):
    assert check_identifier(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "Upper", "a-b", 'a"b', "a b", "x" * 64, None])
def test_identifiers_refused(name):
    with pytest.raises(ValueError):
        check_identifier(name)  # type: ignore[arg-type]


def test_every_backend_is_registered_whichever_module_is_imported_first():
    import subprocess
    import sys

    code = ("import ot_core.engines.mysql\n"
            "from ot_core.engines import registered\n"
            "print(sorted(registered()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['duckdb', 'mysql', 'postgresql', 'redshift', 'sqlite']"

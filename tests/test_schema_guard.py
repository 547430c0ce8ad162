"""A config change that would orphan the warehouse's data (other schema names) is refused
before anything is written, naming what would move, unless the operator confirms it."""

from __future__ import annotations

from click.testing import CliRunner
from test_bad_input import base_config, warehouse_state, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate


def test_changing_schema_names_needs_confirmation(pair, tmp_path):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3, source=pair.source_url)
    run_cycle("2026-03-01T12:00:00Z", config=parse_config(base_config()),
              source=pair.source_url, warehouse=pair.warehouse_url)
    before = warehouse_state(pair.warehouse_url)
    moved = base_config()
    moved["schemas"]["mart"] = "ods_next"
    cfg = str(write_config(tmp_path, moved, "moved.yml"))
    cli = CliRunner()
    res = cli.invoke(main, ["cycle", "--as-of", "2026-03-02T00:00:00Z", "--config", cfg],
                     env=pair.env())
    assert res.exit_code == 2, res.output
    assert "schemas.mart: settlement_ods → ods_next" in res.output and "--new-schemas" in res.output
    assert warehouse_state(pair.warehouse_url) == before
    listed = cli.invoke(main, ["exceptions", "list", "--config", cfg], env=pair.env())
    assert listed.exit_code == 2, listed.output  # every command guards, not only the cycle
    ok = cli.invoke(main, ["cycle", "--as-of", "2026-03-02T00:00:00Z", "--config", cfg,
                           "--new-schemas"], env=pair.env())
    assert ok.exit_code == 0, ok.output
    again = cli.invoke(main, ["cycle", "--as-of", "2026-03-02T00:00:00Z", "--config", cfg],
                       env=pair.env())
    assert again.exit_code == 0, again.output  # the new names are the recorded ones now

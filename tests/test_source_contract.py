"""The source contract is checked before any table is written in a cycle: names (exactly as
the contract spells them), types, DECIMAL scale and precision, lengths, nulls; a value the
warehouse cannot hold exactly stops the cycle with one line; nothing is ever rounded."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from support.configs import base_config, warehouse_state, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.errors import ContractError
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate

FIRST, SECOND = "2026-03-01T12:00:00Z", "2026-03-02T00:00:00Z"


def _landed_once(pair) -> dict:
    cfg = parse_config(base_config())
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3, source=pair.source_url)
    run_cycle(FIRST, config=cfg, source=pair.source_url, warehouse=pair.warehouse_url)
    before = warehouse_state(pair.warehouse_url)
    assert before["batches"] and before["watermarks"]
    return before


def _sql(url: str, *statements: str, params: dict | None = None) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as c:
        for s in statements:
            c.execute(sa.text(s), params or {})
    eng.dispose()


def _refused(pair, tmp_path, before: dict, *needles: str) -> str:
    res = CliRunner().invoke(main, ["cycle", "--as-of", SECOND, "--config",
                                    str(write_config(tmp_path, base_config()))], env=pair.env())
    assert res.exit_code == 3, res.output  # terminal: fix the source, then rerun
    text = res.output
    for needle in needles:
        assert needle in text, text
    assert "Traceback" not in text and "nothing was extracted, no table was written" in text
    assert warehouse_state(pair.warehouse_url) == before
    return text


@pytest.mark.servers
def test_a_decimal_scale_change_stops_the_cycle_unrounded(servers, tmp_path):
    before = _landed_once(servers)
    _sql(servers.source_url,
         "ALTER TABLE ecs_order_info MODIFY declared_value DECIMAL(14,4)",
         "UPDATE ecs_order_info SET declared_value = 12.3456 WHERE order_id = "
         "(SELECT m FROM (SELECT MAX(order_id) AS m FROM ecs_order_info) x)")
    _refused(servers, tmp_path, before, "'ecs_order_info'", "'declared_value'",
             "decimal(14,4)", "DECIMAL(12,2)", "rounded")


def test_text_in_an_integer_column_stops_before_any_table_is_written(embedded, tmp_path):
    """uni_tracking_info lands after ecs_order_info: one transaction keeps ecs unwritten."""
    before = _landed_once(embedded)
    _sql(embedded.source_url, "UPDATE uni_tracking_info SET status = 'lost', update_time = "
         "strftime('%s', '2026-03-01T18:00:00') WHERE order_id = (SELECT MIN(order_id) FROM "
         "uni_tracking_info)")
    _refused(embedded, tmp_path, before, "'uni_tracking_info'", "'status'", "'lost'")


@pytest.mark.parametrize("column, value, why", [
    ("declared_value", "12.3456", "rounded"),   # more decimals than the scale
    ("declared_value", "123456789012.5", "too large"),  # more digits than DECIMAL(12,2)
    ("partner_id", 2**40, "does not fit"),      # INT in the contract
    ("order_sn", "x" * 40, "longer than 32"),   # VARCHAR(32)
])
def test_values_that_do_not_fit_stop_the_cycle(embedded, tmp_path, column, value, why):
    before = _landed_once(embedded)
    _sql(embedded.source_url, f"UPDATE ecs_order_info SET {column} = :v, add_time = "
         "strftime('%s', '2026-03-01T18:00:00') WHERE order_id = (SELECT MAX(order_id) FROM "
         "ecs_order_info)", params={"v": value})
    _refused(embedded, tmp_path, before, "'ecs_order_info'", f"'{column}'", why)


def test_a_column_renamed_only_in_case_is_named_before_anything_is_read(embedded, tmp_path):
    before = _landed_once(embedded)
    _sql(embedded.source_url, 'ALTER TABLE uni_tracking_spath RENAME COLUMN "pathTime" TO PATHTIME')
    _refused(embedded, tmp_path, before, "'pathTime'", "'PATHTIME'")


def test_drift_the_landing_can_hold_is_logged_and_the_cycle_goes_on(embedded, caplog):
    _landed_once(embedded)
    _sql(embedded.source_url, "ALTER TABLE ecs_order_info ADD COLUMN promo_code TEXT")
    with caplog.at_level(logging.WARNING, logger="ot.contract"):
        res = run_cycle(SECOND, config=parse_config(base_config()), source=embedded.source_url,
                        warehouse=embedded.warehouse_url)
    assert res.tables["ecs_order_info"].rows_loaded > 0
    assert any("'promo_code'" in r.getMessage() for r in caplog.records)


def test_the_library_raises_a_contract_error_naming_the_value(embedded):
    _landed_once(embedded)
    _sql(embedded.source_url, "UPDATE uni_tracking_spath SET order_id = 'n/a', add_time = "
         "strftime('%s', '2026-03-01T18:00:00') WHERE id = (SELECT MAX(id) FROM "
         "uni_tracking_spath)")
    with pytest.raises(ContractError, match="'n/a'"):
        run_cycle(SECOND, config=parse_config(base_config()), source=embedded.source_url,
                  warehouse=embedded.warehouse_url)

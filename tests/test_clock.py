"""The clock cannot run ahead: a cycle's instant is checked against the source's own clock
and the warehouse's watermarks before anything is written, and a watermark never moves
past what was read."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from support.configs import base_config, warehouse_state, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.db.connect import open_database
from ot_core.errors import ClockError, ConfigError
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate
from ot_core.timeutil import from_epoch, iso, to_epoch, utcnow


def _seeded(pair) -> str:
    """A source with a day of orders ending an hour ago, and one cycle landed; its as_of."""
    now = to_epoch(utcnow())
    until = from_epoch(now - 3600)
    simulate(until, days=1, orders_per_day=30, seed=4, source=pair.source_url)
    at = iso(from_epoch(now - 3600))
    run_cycle(at, config=parse_config(base_config()), source=pair.source_url,
              warehouse=pair.warehouse_url)
    return at


def _cli(pair, tmp_path, *args):
    cfg = write_config(tmp_path, base_config())
    return CliRunner().invoke(main, ["cycle", "--config", str(cfg), *args], env=pair.env())


def test_an_as_of_ahead_of_the_source_clock_is_refused_with_nothing_written(pair, tmp_path):
    _seeded(pair)
    before = warehouse_state(pair.warehouse_url)
    res = _cli(pair, tmp_path, "--as-of", "2030-01-01T00:00:00Z")
    assert res.exit_code == 2, res.output
    assert "2030-01-01T00:00:00Z" in res.output and "ahead of the source's clock" in res.output
    assert str(utcnow().year) in res.output  # names the source's clock too
    assert warehouse_state(pair.warehouse_url) == before


def test_an_as_of_behind_the_watermark_needs_allow_past(embedded, tmp_path):
    at = _seeded(embedded)
    before = warehouse_state(embedded.warehouse_url)
    earlier = iso(from_epoch(to_epoch(utcnow()) - 3 * 3600))
    res = _cli(embedded, tmp_path, "--as-of", earlier)
    assert res.exit_code == 2, res.output
    assert earlier in res.output and at in res.output and "--allow-past" in res.output
    assert warehouse_state(embedded.warehouse_url) == before
    ok = _cli(embedded, tmp_path, "--as-of", earlier, "--allow-past")
    assert ok.exit_code == 0, ok.output
    after = warehouse_state(embedded.warehouse_url)
    assert after["watermarks"] == before["watermarks"]  # read nothing, moved nothing
    # the same instant again is a replay, not the past: allowed and reads nothing
    again = _cli(embedded, tmp_path, "--as-of", at)
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59Z", "0001-01-01", "1999-07-01"])
def test_instants_outside_the_epoch_range_or_before_the_data_are_refused(embedded, tmp_path,
                                                                          value):
    _seeded(embedded)
    before = warehouse_state(embedded.warehouse_url)
    res = _cli(embedded, tmp_path, "--as-of", value)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert warehouse_state(embedded.warehouse_url) == before
    wh = open_database("warehouse", embedded.warehouse_url)
    try:
        with wh.engine.connect() as conn:
            hist = wh.backend.list_tables(conn, "settlement_ods", "hist_")
    finally:
        wh.dispose()
    assert not [h for h in hist if "1998" in h or "1999" in h]


def test_the_watermark_stops_at_the_source_clock_within_the_skew(pair):
    """An as_of a minute ahead (inside cycle.clock_skew_seconds) is accepted, but the window
    read ends at the source's clock: rows stamped in that minute are read next cycle."""
    now = to_epoch(utcnow())
    simulate(from_epoch(now), days=1, orders_per_day=30, seed=4, source=pair.source_url)
    ahead = now + 60
    started = int(time.time())
    run_cycle(from_epoch(ahead), config=parse_config(base_config()), source=pair.source_url,
              warehouse=pair.warehouse_url)
    marks = dict(warehouse_state(pair.warehouse_url)["watermarks"])
    assert marks and all(started - 5 <= w <= int(time.time()) + 1 for w in marks.values()), marks
    assert all(w < ahead for w in marks.values())
    with pytest.raises(ClockError):
        run_cycle(from_epoch(to_epoch(utcnow()) + 3600), config=parse_config(base_config()),
                  source=pair.source_url, warehouse=pair.warehouse_url)


@pytest.mark.parametrize("interval", ["banana", "0m", "0"])
def test_a_zero_or_unreadable_interval_is_a_config_error(interval):
    data = base_config()
    data["cycle"]["interval"] = interval
    with pytest.raises(ConfigError, match="cycle.interval"):
        parse_config(data)


def test_catch_up_with_a_zero_step_is_refused(embedded, tmp_path):
    _seeded(embedded)
    res = _cli(embedded, tmp_path, "--catch-up", "--step", "0m")
    assert res.exit_code == 2 and "zero" in res.output, res.output


def test_a_scheduled_slot_a_manual_cycle_covered_is_nothing_to_do(embedded):
    """Try a cycle by hand, then unpause the scheduler: its slot (earlier than what the hand
    run read) succeeds as nothing to do; a past instant typed by a person is still refused."""
    import json

    from click.testing import CliRunner

    from ot_core.cli import main
    from ot_core.simulate import simulate

    simulate("2026-03-02T12:00:00Z", start="2026-03-01", orders_per_day=20, seed=3,
             source=embedded.source_url)
    env = embedded.env()
    run = CliRunner().invoke
    assert run(main, ["cycle", "--as-of", "2026-03-02T12:00:26Z"], env=env).exit_code == 0
    slot = run(main, ["run", "cycle", "-p", "as_of", "2026-03-02T12:00:00Z", "-p", "scheduled",
                      "true", "--json"], env=env)
    assert slot.exit_code == 0, slot.output
    out = json.loads(slot.stdout)
    assert out["status"] == "succeeded"
    import nbformat

    text = nbformat.read(out["notebook"], as_version=4)
    shown = "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", ""))
                    for c in text.cells for o in c.get("outputs", []))
    assert "Nothing to do" in shown and "2026-03-02T12:00:26Z" in shown
    typed = run(main, ["cycle", "--as-of", "2026-03-02T12:00:00Z"], env=env)
    assert typed.exit_code == 2 and "earlier than what the warehouse has already read" in typed.stderr
    hand = run(main, ["run", "cycle", "-p", "as_of", "2026-03-02T12:00:00Z"], env=env)
    assert hand.exit_code == 2, hand.output

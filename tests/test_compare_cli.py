"""`ot compare --json` and `ot refresh-ecs` from the command line, on the embedded pair."""

from __future__ import annotations

import json

import sqlalchemy as sa
from click.testing import CliRunner

from ot_core.cli import main
from ot_core.cycle import run_cycle
from ot_core.simulate import simulate


def test_compare_json_and_exit_codes(embedded, monkeypatch):
    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    simulate("2026-03-01", start="2026-02-22", orders_per_day=30, seed=3)
    run_cycle("2026-03-01T00:00:00Z")
    runner = CliRunner()
    for table in ("uts", "uti", "ecs"):
        res = runner.invoke(main, ["compare", "--table", table, "--month", "2026-02", "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["rows_source"] == out["rows_target"] > 0
        assert (out["missing"], out["extra"], out["changed"], out["mismatch_rate"]) == (0, 0, 0, 0)
        assert 0 < out["rows_transferred"] < out["rows_source"]
    eng = sa.create_engine(embedded.source_url)
    with eng.begin() as c:
        c.execute(sa.text("DELETE FROM uni_tracking_spath WHERE id = (SELECT MIN(id) FROM "
                          "uni_tracking_spath)"))
    eng.dispose()
    res = runner.invoke(main, ["compare", "--table", "uts", "--month", "2026-02", "--json"])
    assert res.exit_code == 1
    out = json.loads(res.output.splitlines()[0])
    assert (out["missing"], out["extra"], out["changed"]) == (0, 1, 0)
    res = runner.invoke(main, ["compare", "--table", "uts", "--month", "Feb"])
    assert res.exit_code == 2 and "YYYY-MM" in res.output
    res = runner.invoke(main, ["refresh-ecs", "--since", "2026-02-01", "--dry-run"])
    assert res.exit_code == 0 and "drifted 0" in res.output

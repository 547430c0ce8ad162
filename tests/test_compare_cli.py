"""`ot compare --json` and `ot refresh-ecs` from the command line, on the embedded pair."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ot_core.cli import main
from ot_core.pipeline.cycle import run_cycle
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


def test_history_tables_and_legacy_relation(embedded, monkeypatch, tmp_path):
    import yaml

    from ot_core.config import DEFAULT_CONFIG, load_config
    from ot_core.contract import SPATH
    from ot_core.db.schema import ddl, keyed_table
    from ot_core.engines import backend_for
    from ot_core.errors import ConfigError

    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    simulate("2026-03-01", start="2026-02-22", orders_per_day=30, seed=4)
    run_cycle("2026-03-01T00:00:00Z")
    eng = sa.create_engine(embedded.warehouse_url)
    be = backend_for(eng)
    hist = keyed_table(SPATH, sa.MetaData(), "settlement_ods", "hist_uni_tracking_spath_2026_h1",
                       "hist", be)
    m = "settlement_ods.mart_uni_tracking_spath"
    with eng.begin() as c:  # the oldest 50 events live in history now
        c.exec_driver_sql(ddl(hist, be))
        c.exec_driver_sql(f"INSERT INTO settlement_ods.hist_uni_tracking_spath_2026_h1 "
                          f"SELECT * FROM {m} ORDER BY id LIMIT 50")
        c.exec_driver_sql(f"DELETE FROM {m} WHERE id IN (SELECT id FROM "
                          "settlement_ods.hist_uni_tracking_spath_2026_h1)")
        c.exec_driver_sql("CREATE SCHEMA legacy_ods")
        c.exec_driver_sql("CREATE TABLE legacy_ods.ecs AS SELECT * FROM "
                          "settlement_ods.mart_ecs_order_info")
        c.exec_driver_sql("UPDATE legacy_ods.ecs SET currency = 'XXX' WHERE order_id = "
                          "(SELECT MIN(order_id) FROM legacy_ods.ecs)")
    eng.dispose()
    runner = CliRunner()
    out = json.loads(runner.invoke(main, ["compare", "--table", "uts", "--json"]).output)
    assert (out["missing"], out["extra"], out["changed"]) == (0, 0, 0)
    eng = sa.create_engine(embedded.warehouse_url)
    with eng.begin() as c:  # one event in both mart and history: a conservation breach
        c.exec_driver_sql(f"INSERT INTO {m} SELECT * FROM "
                          "settlement_ods.hist_uni_tracking_spath_2026_h1 ORDER BY id LIMIT 1")
    eng.dispose()
    res = runner.invoke(main, ["compare", "--table", "uts", "--json"])
    out = json.loads(res.output.splitlines()[0])
    assert res.exit_code == 1 and (out["missing"], out["extra"], out["changed"]) == (0, 1, 0)

    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["compare"] = {"legacy": {"ecs_order_info": "legacy_ods.ecs"}, "max_mismatch_rate": 0.5}
    cfg_path = tmp_path / "pipeline.yml"
    cfg_path.write_text(yaml.safe_dump(data))
    res = runner.invoke(main, ["compare", "--table", "ecs", "--against", "legacy", "--json",
                               "--config", str(cfg_path)])
    out = json.loads(res.output)
    assert res.exit_code == 0 and out["changed"] == 1 and out["changed_columns"] == {"currency": 1}
    assert out["source"] == "legacy legacy_ods.ecs"
    data["compare"] = {"legacy": {"ecs_order_info": "legacy_ods.ecs; drop table x"}}
    cfg_path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="legacy"):
        load_config(cfg_path)


def test_compare_closes_its_in_process_duckdb(embedded, monkeypatch):
    """The Arrow path hashes in an in-process DuckDB: closed when the compare ends (the
    `ot` process does not tear the interpreter down, so nothing else would close it)."""
    import duckdb

    from ot_core.quality.compare.arrow import ArrowSegments

    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    simulate("2026-03-01", start="2026-02-25", orders_per_day=20, seed=5)
    run_cycle("2026-03-01T00:00:00Z")
    made: list[ArrowSegments] = []
    original = ArrowSegments.for_reader.__func__

    def recording(cls, reader):
        seg = original(cls, reader)
        if seg is not None:
            made.append(seg)
        return seg

    monkeypatch.setattr(ArrowSegments, "for_reader", classmethod(recording))
    res = CliRunner().invoke(main, ["compare", "--table", "uts", "--json"])
    assert res.exit_code == 0, res.output
    assert made, "the SQLite side should be read through the Arrow path"
    for seg in made:
        with pytest.raises(duckdb.ConnectionException):
            seg.duck.execute("SELECT 1")

"""What a difference means: rows changed at the source after what the cycles have read are
*pending* (the next cycle reads them), rows stamped after the source's clock are *future*;
neither is a mismatch, neither is reported as clean, and a row the warehouse really holds
wrong still fails the comparison."""

from __future__ import annotations

import json

import sqlalchemy as sa
from click.testing import CliRunner
from support.configs import base_config, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.pipeline.cycle import run_cycle
from ot_core.quality.compare import run_compare
from ot_core.simulate import simulate
from ot_core.timeutil import parse_as_of, to_epoch

AT = "2026-03-03T00:00:00Z"
UPDATE = ("UPDATE uni_tracking_info SET status = 50, update_time = :t WHERE order_id IN :ids")


def _update(url: str, ids: list[int], stamp: int) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text(UPDATE).bindparams(sa.bindparam("ids", expanding=True)),
                  {"t": stamp, "ids": ids})
    eng.dispose()


def test_pending_and_future_rows_are_not_mismatches_and_not_clean(pair, tmp_path):
    simulate("2026-03-03", start="2026-03-01", orders_per_day=60, seed=9, source=pair.source_url)
    cfg = parse_config(base_config())
    run_cycle(AT, config=cfg, source=pair.source_url, warehouse=pair.warehouse_url)
    eng = sa.create_engine(pair.source_url)
    with eng.connect() as c:
        ids = [r[0] for r in c.execute(sa.text(
            "SELECT order_id FROM uni_tracking_info ORDER BY order_id LIMIT 10"))]
        clock = int(c.execute(sa.text("SELECT MAX(update_time) FROM uni_tracking_info")).scalar())
    eng.dispose()
    moved, ahead = ids[:9], ids[9]
    _update(pair.source_url, moved, to_epoch(parse_as_of(AT)) + 600)  # after the last read
    _update(pair.source_url, [ahead], 4_000_000_000)  # stamped in 2096: after any clock
    assert clock < 4_000_000_000
    rep = run_compare("uti", config=cfg, source=pair.source_url, warehouse=pair.warehouse_url,
                      record=False)
    assert (rep.missing, rep.extra, rep.changed) == (0, 0, 0), rep.to_dict()
    assert rep.pending == 9 and rep.keys["pending"] == sorted(moved)
    assert rep.future == 1 and rep.keys["future"] == [ahead]
    assert rep.mismatch_rate == 0 and rep.status == "ok"
    res = CliRunner().invoke(main, ["compare", "--table", "uti", "--config",
                                    str(write_config(tmp_path, base_config()))], env=pair.env())
    assert res.exit_code == 0, res.output
    assert "pending 9, future 1" in res.output
    assert "9 changed at the source after the last cycle's read" in res.output
    assert "1 stamped after the source's clock (read once the clock passes 2096-" in res.output
    assert "read next cycle" not in res.output.replace("the next cycle reads them", "")

    # a row the warehouse really lacks is known wrong: exit 1, its key kept for a repair
    wh = sa.create_engine(pair.warehouse_url)
    with wh.begin() as c:
        gone = c.execute(sa.text("SELECT order_id FROM settlement_ods.mart_uni_tracking_info "
                                 "WHERE order_id > :k ORDER BY update_time, order_id LIMIT 1"),
                         {"k": max(ids)}).scalar()
        c.execute(sa.text("DELETE FROM settlement_ods.mart_uni_tracking_info "
                          "WHERE order_id = :k"), {"k": gone})
    wh.dispose()
    res = CliRunner().invoke(main, ["compare", "--table", "uti", "--json", "--config",
                                    str(write_config(tmp_path, base_config()))], env=pair.env())
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["missing"] == 1 and doc["sample_keys"]["missing"] == [gone]
    assert doc["pending"] == 9 and doc["future"] == 1 and doc["status"] in ("wrong", "failed")
    assert f"ot repair --from-compare {doc['run_id']}" in res.stderr

"""The comparison scopes itself to what the warehouse has read: rows changed at the source
after the last watermark are reported apart as not yet extracted, never as mismatches."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner
from test_bad_input import base_config, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.pipeline.cycle import run_cycle
from ot_core.quality.compare import run_compare
from ot_core.simulate import simulate
from ot_core.timeutil import parse_as_of, to_epoch

AT = "2026-03-03T00:00:00Z"


def test_a_source_moving_after_the_cycle_is_not_a_mismatch(pair, tmp_path):
    simulate("2026-03-03", start="2026-03-01", orders_per_day=60, seed=9, source=pair.source_url)
    run_cycle(AT, config=parse_config(base_config()), source=pair.source_url,
              warehouse=pair.warehouse_url)
    later = to_epoch(parse_as_of(AT)) + 600
    eng = sa.create_engine(pair.source_url)
    with eng.begin() as c:  # the source moves on: nine tracking states updated after the cycle
        moved = [r[0] for r in c.execute(sa.text(
            "SELECT order_id FROM uni_tracking_info ORDER BY order_id LIMIT 9"))]
        c.execute(sa.text("UPDATE uni_tracking_info SET status = 50, update_time = :t "
                          "WHERE order_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                  {"t": later, "ids": moved})
    eng.dispose()
    rep = run_compare("uti", config=parse_config(base_config()), source=pair.source_url,
                      warehouse=pair.warehouse_url, record=False)
    assert (rep.missing, rep.extra, rep.changed) == (0, 0, 0), rep.to_dict()
    assert rep.not_extracted == 9 and rep.keys["not_extracted"] == sorted(moved)
    assert rep.mismatch_rate == 0
    res = CliRunner().invoke(main, ["compare", "--table", "uti", "--json", "--config",
                                    str(write_config(tmp_path, base_config()))], env=pair.env())
    assert res.exit_code == 0, res.output
    assert '"not_extracted": 9' in res.output
    # a row the warehouse really lacks is still a mismatch
    wh = sa.create_engine(pair.warehouse_url)
    with wh.begin() as c:
        c.execute(sa.text("DELETE FROM settlement_ods.mart_uni_tracking_info WHERE order_id = "
                          "(SELECT MAX(order_id) FROM settlement_ods.mart_uni_tracking_info)"))
    wh.dispose()
    rep = run_compare("uti", config=parse_config(base_config()), source=pair.source_url,
                      warehouse=pair.warehouse_url, record=False, fail=False)
    assert rep.missing == 1 and rep.not_extracted == 9 and rep.mismatch_rate > 0

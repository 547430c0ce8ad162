"""A real SIGKILL between archive and trim (OT_FAILPOINT in a subprocess ``ot cycle``),
then a rerun: the conservation invariant holds afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.lifecycle import Source, T, config, conserved, wh_scalar

from ot_core.pipeline.cycle import run_cycle

OT = str(Path(sys.executable).parent / "ot")


def _ot_cycle(pair, as_of: str, failpoint: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, **pair.env()}
    env.pop("OT_FAILPOINT", None)
    if failpoint:
        env["OT_FAILPOINT"] = failpoint
    return subprocess.run([OT, "cycle", "--as-of", as_of], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("point", ["lifecycle_after_archive:uni_tracking_spath",
                                   "lifecycle_before_trim:ecs_order_info"])
def test_kill_between_archive_and_trim_then_rerun(embedded, point):
    src, cfg = Source(embedded.source_url), config()
    for o in range(1, 6):
        src.order(o, T("2026-01-05") + o)
        src.state(o, T("2026-01-06") + o, 40)
        src.event(o, T("2026-01-06") + o, T("2026-01-06T01:00:00") + o)
        src.event(o, T("2026-01-06") + o, T("2026-01-06T01:00:00") + o)  # same pathTime
    src.order(9, T("2026-05-01"))
    src.state(9, T("2026-05-02"))
    run_cycle("2026-05-10", config=cfg, source=embedded.source_url,
              warehouse=embedded.warehouse_url)
    killed = _ot_cycle(embedded, "2026-08-01", point)
    assert killed.returncode == -9, killed.stderr
    # the kill really fell between archive and trim: rows sit in mart AND history
    table = point.split(":")[1]
    hist = f"settlement_ods.hist_{table}_2026_h1"
    assert wh_scalar(embedded.warehouse_url, f"SELECT COUNT(*) FROM {hist}") > 0
    assert not conserved(embedded.source_url, embedded.warehouse_url, cfg, T("2026-08-01")).ok
    rerun = _ot_cycle(embedded, "2026-08-01", None)
    assert rerun.returncode == 0, rerun.stderr
    rep = conserved(embedded.source_url, embedded.warehouse_url, cfg, T("2026-08-01"))
    assert rep.ok, rep.violations[:5]
    assert wh_scalar(embedded.warehouse_url,
                     "SELECT COUNT(*) FROM settlement_ods.mart_uni_tracking_spath") == 0
    assert wh_scalar(embedded.warehouse_url,
                     "SELECT COUNT(*) FROM settlement_ods.mart_ecs_order_info") == 1

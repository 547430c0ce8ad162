"""Crash safety with a real kill: ``ot cycle`` SIGKILLed between two steps, then rerun, leaves
exactly the warehouse one clean cycle leaves.

The kill comes from ``OT_FAILPOINT`` (ot_core/failpoints.py): no ``finally`` block, no
context manager and no rollback handler runs, as in an OOM kill or a power cut. The twin
warehouse ran the same history without the kill; the two must match on every mart and raw
row (minus ``_extracted_at``), every batch record (minus its timestamps) and every
watermark (minus ``updated_at``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ot_core.config import DEFAULT_CONFIG, parse_config
from ot_core.contract import CONTRACTS
from ot_core.db.connect import open_database
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate

OT = str(Path(sys.executable).with_name("ot"))
FIRST, CRASHED = "2026-03-02T06:00:00Z", "2026-03-02T18:00:00Z"


def config_file(tmp: Path) -> Path:
    data = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    data["lifecycle"]["enabled"] = False
    p = tmp / "pipeline.yml"
    p.write_text(yaml.safe_dump(data))
    return p


def ot_cycle(as_of: str, source: str, warehouse: str, cfg: Path,
             failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_")}
    env.update(OT_SOURCE_URL=source, OT_WAREHOUSE_URL=warehouse, OT_DATA_DIR=str(cfg.parent))
    if failpoint:
        env["OT_FAILPOINT"] = failpoint
    return subprocess.run([OT, "cycle", "--as-of", as_of, "--config", str(cfg)], env=env,
                          capture_output=True, text=True, timeout=180)


def state(url: str, cfg_path: Path) -> dict[str, list[tuple]]:
    """The warehouse's whole content, minus the wall-clock timestamps."""
    cfg = parse_config(yaml.safe_load(cfg_path.read_text()))
    db = open_database("warehouse", url)
    b = db.backend
    out = {}
    try:
        with db.engine.connect() as conn:
            def rows(schema, table, cols):
                sel = ", ".join(b.quote(c) for c in cols)
                return sorted(conn.execute(sa.text(
                    f"SELECT {sel} FROM {b.qualified(schema, table)}")).all())

            for t, c in CONTRACTS.items():
                cols = c.column_names + ["_raw_id", "_batch_id"]
                out[f"{t}_raw"] = rows(cfg.schemas.raw, f"{t}_raw", cols)
                out[f"mart_{t}"] = rows(cfg.schemas.mart, f"mart_{t}", cols)
            out["ot_batches"] = rows(cfg.schemas.control, "ot_batches", [
                "batch_id", "table_name", "strategy", "as_of", "lower_bound", "upper_bound",
                "raw_id_min", "raw_id_max", "rows_extracted", "rows_loaded", "rows_merged",
                "status"])
            out["ot_watermarks"] = rows(cfg.schemas.control, "ot_watermarks",
                                        ["table_name", "watermark", "batch_id"])
    finally:
        db.dispose()
    return out


@pytest.fixture
def twin_url(request, pair):
    """A second, empty warehouse on the same backend as ``pair``'s."""
    if pair.kind == "embedded":
        yield f"duckdb:///{pair.tmp}/twin.duckdb"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", ["after_load:uni_tracking_info",
                                       "after_merge:uni_tracking_info",
                                       "after_load:ecs_order_info"])
def test_killed_cycle_rerun_equals_clean_cycle(pair, twin_url, tmp_path, failpoint):
    cfg = config_file(tmp_path)
    simulate("2026-03-02T18:00:00Z", start="2026-03-01", orders_per_day=40, seed=5,
             source=pair.source_url)
    config = parse_config(yaml.safe_load(cfg.read_text()))
    for wh in (pair.warehouse_url, twin_url):  # a shared history before the crash
        run_cycle(FIRST, config=config, source=pair.source_url, warehouse=wh)

    killed = ot_cycle(CRASHED, pair.source_url, pair.warehouse_url, cfg, failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    mid = state(pair.warehouse_url, cfg)
    if failpoint.startswith("after_load"):  # the kill left a landed, unmerged batch behind
        assert [r for r in mid["ot_batches"] if r[-1] == "loaded"]

    # the rerun and the twin's clean cycle run in this process (no failpoint is set here)
    rerun = run_cycle(CRASHED, config=config, source=pair.source_url, warehouse=pair.warehouse_url)
    if failpoint.startswith("after_load"):
        assert rerun.tables[failpoint.split(":")[1]].recovered_batches == 1
    run_cycle(CRASHED, config=config, source=pair.source_url, warehouse=twin_url)

    got, want = state(pair.warehouse_url, cfg), state(twin_url, cfg)
    assert got["ot_batches"] and all(r[-1] == "merged" for r in got["ot_batches"])
    assert got["mart_uni_tracking_spath"]
    for name in want:
        assert got[name] == want[name], f"{name} differs after the killed cycle's rerun"

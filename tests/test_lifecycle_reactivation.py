"""Reactivation on both backends, and the exceptions/rotation commands and job."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner
from support.lifecycle import Source, T, config, conserved, wh_rows

from ot_core.cli import main
from ot_core.config import DEFAULT_CONFIG
from ot_core.pipeline.cycle import run_cycle

ODS = "settlement_ods"


def _cycle(pair, at: str):
    cfg = config()
    res = run_cycle(at, config=cfg, source=pair.source_url, warehouse=pair.warehouse_url,
                    source_clock=T(at))  # simulated time may run past the real clock
    rep = conserved(pair.source_url, pair.warehouse_url, cfg, T(at))
    assert rep.ok, rep.violations[:5]
    return res.lifecycle


def _where(pair, table: str, key: str, value: int) -> list[str]:
    """Names of the mart/history tables holding the key."""
    rels = [r[0] for r in wh_rows(pair.warehouse_url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
            "ORDER BY 1", {"s": ODS})]
    out = []
    for rel in rels:
        if rel in (f"mart_{table}",) or rel.startswith(f"hist_{table}_"):
            if wh_rows(pair.warehouse_url, f"SELECT 1 FROM {ODS}.{rel} WHERE {key} = :v",
                       {"v": value}):
                out.append(rel)
    return out


def test_updated_order_leaves_history_and_its_order_row_comes_back(pair):
    src = Source(pair.source_url)
    src.order(1, T("2026-01-05"))
    src.state(1, T("2026-01-06"), 40)
    src.event(1, T("2026-01-06"), T("2026-01-06T00:01:00"))
    src.order(2, T("2026-01-05") + 1)  # a second order that stays archived
    src.state(2, T("2026-01-06") + 1, 40)
    _cycle(pair, "2026-02-01")
    lc = _cycle(pair, "2026-08-01")
    assert lc["rows_archived"] == lc["rows_trimmed"] == 5
    assert _where(pair, "uni_tracking_info", "order_id", 1) == ["hist_uni_tracking_info_2026_h1"]
    assert _where(pair, "ecs_order_info", "order_id", 1) == ["hist_ecs_order_info_2026_h1"]
    src.state(1, T("2026-08-10"), 50)  # returned to sender, seven months later
    lc = _cycle(pair, "2026-08-15")
    assert lc["tables"]["uni_tracking_info"]["reactivated"] == 1
    assert lc["tables"]["ecs_order_info"]["restored"] == 1
    assert _where(pair, "uni_tracking_info", "order_id", 1) == ["mart_uni_tracking_info"]
    assert _where(pair, "ecs_order_info", "order_id", 1) == ["mart_ecs_order_info"]
    assert _where(pair, "ecs_order_info", "order_id", 2) == ["hist_ecs_order_info_2026_h1"]
    assert _where(pair, "uni_tracking_spath", "order_id", 1) == ["hist_uni_tracking_spath_2026_h1"]
    _cycle(pair, "2027-03-01")  # inactive again: archived again, into the right periods
    assert _where(pair, "uni_tracking_info", "order_id", 1) == ["hist_uni_tracking_info_2026_h2"]
    assert _where(pair, "ecs_order_info", "order_id", 1) == ["hist_ecs_order_info_2026_h1"]


def test_restored_order_outside_the_crossing_bounds_stays_while_active(pair):
    """The archive's probes are bounded by the key range of the rows crossing the cutoff,
    read before the lifecycle's steps. An order restored from history in the same cycle lies
    outside that range; its order row must still count as active, not be archived again."""
    src = Source(pair.source_url)
    src.order(1, T("2026-01-05"))
    src.state(1, T("2026-01-06"), 40)
    for oid in (500, 501):  # old orders still tracked: their order rows stay in the mart
        src.order(oid, T("2026-02-10"))
        src.state(oid, T("2026-02-11"), 20)
    _cycle(pair, "2026-02-12")
    _cycle(pair, "2026-08-01")  # cutoff 2026-02-01: order 1 archived, 500/501 not yet due
    assert _where(pair, "ecs_order_info", "order_id", 1) == ["hist_ecs_order_info_2026_h1"]
    for oid in (500, 501):
        src.state(oid, T("2026-08-09"), 30)
    src.state(1, T("2026-08-10"), 50)  # order 1 moves again
    lc = _cycle(pair, "2026-08-15")  # cutoff 2026-02-15: 500/501 cross it, gated (active)
    assert lc["tables"]["ecs_order_info"]["restored"] == 1
    assert lc["tables"]["ecs_order_info"]["archived"] == 0
    assert _where(pair, "ecs_order_info", "order_id", 1) == ["mart_ecs_order_info"]
    assert _where(pair, "uni_tracking_info", "order_id", 1) == ["mart_uni_tracking_info"]
    for oid in (500, 501):
        assert _where(pair, "ecs_order_info", "order_id", oid) == ["mart_ecs_order_info"]


def test_exceptions_and_rotate_commands(embedded, tmp_path, monkeypatch):
    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    data = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    data["lifecycle"]["ensure_periods"] = False
    off = tmp_path / "off.yml"
    off.write_text(yaml.safe_dump(data))
    src = Source(embedded.source_url)
    src.order(7, T("2026-01-10"))
    cli = CliRunner()
    for at in ("2026-02-01", "2026-08-01"):
        r = cli.invoke(main, ["cycle", "--as-of", at, "--config", str(off)])
        assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["exceptions", "list"])
    assert r.exit_code == 0 and "ARCHIVE_ROUTING_GAP" in r.output
    assert "hist_ecs_order_info_2026_h1" in r.output  # the note names the missing table
    r = cli.invoke(main, ["exceptions", "resolve", "1", "--note", "table created by hand"])
    assert r.exit_code == 0 and "exception 1 resolved" in r.output, r.output
    assert cli.invoke(main, ["exceptions", "list"]).output.strip() == "no exceptions"
    r = cli.invoke(main, ["exceptions", "list", "--all"])
    assert "table created by hand" in r.output
    r = cli.invoke(main, ["exceptions", "resolve", "1", "--note", "again"])
    assert r.exit_code == 2 and "already resolved" in r.output
    r = cli.invoke(main, ["rotate", "--as-of", "2026-08-01"])
    assert r.exit_code == 0 and "hist_ecs_order_info_2026_h1" in r.output, r.output
    assert "created none" in cli.invoke(main, ["rotate", "--as-of", "2026-08-01"]).output
    for cmd in (["rotate", "--help"], ["exceptions", "resolve", "--help"]):
        assert cli.invoke(main, cmd).exit_code == 0


def test_rotate_periods_job_notebook(embedded, monkeypatch):
    from ot_core.jobs.runner import execute

    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    run = execute("rotate_periods", {"as_of": "2026-08-01"})
    assert run.status == "succeeded", run.error
    names = [r[0] for r in wh_rows(embedded.warehouse_url,
             "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'hist_%' "
             "ORDER BY 1")]
    # cutoff 2026-02-01 → 2026_h1; as_of + 45 days → 2026_h2; the marts are empty
    assert names == sorted(f"hist_{t}_{p}" for t in ("ecs_order_info", "uni_tracking_info",
                                                     "uni_tracking_spath")
                           for p in ("2026_h1", "2026_h2"))

"""``ot runs`` as an operator reads it in a terminal: one short line per run, no NaN, None
or NaT for what a run does not have yet, an error on a line of its own (a real DuckDB
warehouse; rows written through the runner's own record functions)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from ot_core.cli import main
from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.jobs.records import finish_run, record_skipped, start_run
from ot_core.resources import runs_dir


def test_runs_is_a_readable_table(embedded, monkeypatch):
    monkeypatch.setenv("OT_WAREHOUSE_URL", embedded.warehouse_url)
    cfg = load_config()
    t0 = datetime(2026, 11, 26, 6, 15, 0, 250_000, tzinfo=UTC)
    base = runs_dir()
    nb = str(base / "cycle/2026/11/26/cycle-20261126T061500Z-succeeded.ipynb")
    with open_database("warehouse") as db:
        ok = start_run(db, cfg, "cycle", {}, t0, None)
        finish_run(db, cfg, ok, status="succeeded", ended=t0 + timedelta(seconds=4.25),
                   notebook_path=nb, error=None, figures={"rows": 1})
        bad = start_run(db, cfg, "daily_monitoring", {"as_of": "x"}, t0 + timedelta(hours=1),
                        None)
        finish_run(db, cfg, bad, status="failed", ended=t0 + timedelta(hours=1, seconds=9),
                   notebook_path=nb.replace("cycle", "daily_monitoring"),
                   error="DataCheckFailed: 2 checks failed: FRESHNESS_LAG\nsecond line",
                   figures=None)
        record_skipped(db, cfg, "cycle", {}, t0 + timedelta(hours=2),
                       "job 'cycle' is already running (pid 4242 on host " + "h" * 200 + ")")
        start_run(db, cfg, "maintenance", {}, t0 + timedelta(hours=3), None, lock_held=False)
    res = CliRunner().invoke(main, ["runs"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["run", "job", "status", "started", "(UTC)", "took", "notebook"]
    assert lines[1].split() == ["4", "maintenance", "running", "2026-11-26", "09:15:00", "-", "-"]
    assert lines[2].split() == ["3", "cycle", "skipped", "2026-11-26", "08:15:00", "0.0", "s",
                                "-"]
    assert lines[3].startswith("     error: job 'cycle' is already running (pid 4242 on host hh")
    assert lines[3].endswith("h…") and len(lines[3]) == 5 + 7 + 90
    assert lines[4].split() == ["2", "daily_monitoring", "failed", "2026-11-26", "07:15:00",
                                "9.0", "s", "daily_monitoring-20261126T061500Z-succeeded.ipynb"]
    assert lines[5].strip() == "error: DataCheckFailed: 2 checks failed: FRESHNESS_LAG"
    assert lines[6].split() == ["1", "cycle", "succeeded", "2026-11-26", "06:15:00", "4.2", "s",
                                "cycle-20261126T061500Z-succeeded.ipynb"]
    assert lines[-1] == (f"notebooks in {base}/JOB/YYYY/MM/DD (UTC start date); "
                         "`ot runs verify` checks none changed")
    assert max(map(len, lines[:-1])) <= 115, res.output  # was ~300
    assert not re.search(r"\b(NaN|None|NaT|nan)\b", res.output), res.output

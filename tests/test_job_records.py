"""Job runs as auditors and operators meet them: the executed notebook's header, the cycle's
record, the offline HTML copy, abandoned runs after a real SIGKILL, list parameters, figures
of every job, `ot run --json`, and a runner whose imports stay light (real SQLite/DuckDB)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

import ot_core
from ot_core.errors import JobError
from ot_core.jobs.catalogue import load_catalogue
from ot_core.jobs.cycle_record import STAGES, Grid, chart_svg, lifecycle_frame, table_frame
from ot_core.jobs.records import recent_runs
from ot_core.jobs.runner import HEADER_TAG, resolve_parameters
from ot_core.pipeline.cycle import catch_up
from ot_core.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
OT = [sys.executable, "-m", "ot_core.cli"]
SVG = "{http://www.w3.org/2000/svg}"


def _env(pair, **extra) -> dict[str, str]:
    return pair.process_env(**extra)


def _ot(pair, *args, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(OT + list(args), env=_env(pair, **extra), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _header(nb) -> str:
    first = nb.cells[0]
    assert first.cell_type == "markdown" and HEADER_TAG in first.metadata.get("tags", [])
    return first.source


def _row(header: str, label: str) -> str:
    m = re.search(rf"^\| {re.escape(label)} \| (.*) \|$", header, re.M)
    assert m, f"no {label!r} row in the header:\n{header}"
    return m.group(1)


@pytest.mark.slow
def test_cycle_run_opens_with_its_header_and_reads_offline(embedded):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=30, seed=3, source=embedded.source_url)
    res = _ot(embedded, "run", "cycle", "-p", "as_of", "2026-03-02T00:00:00Z", "--html", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"run_id", "job", "status", "notebook", "error", "exit_code"}
    assert (out["run_id"], out["job"], out["status"], out["error"], out["exit_code"]) == \
        (1, "cycle", "succeeded", None, 0)
    path = Path(out["notebook"])
    nb = nbformat.read(path, as_version=4)
    header = _header(nb)
    assert header.startswith("# Run 1 of job `cycle`: SUCCEEDED")
    assert _row(header, "run id") == "1"
    assert _row(header, "status") == "**succeeded**"
    assert json.loads(_row(header, "parameters").strip("`")) == {"as_of": "2026-03-02T00:00:00Z"}
    started, ended = _row(header, "started (UTC)"), _row(header, "ended (UTC)")
    assert re.fullmatch(r"2\d{3}-\d\d-\d\dT\d\d:\d\d:\d\dZ", started) and ended >= started
    assert re.fullmatch(r"\d+\.\d s", _row(header, "duration"))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    assert _row(header, "code version").startswith(f"ot_core {ot_core.__version__}, git commit {commit}")
    assert _row(header, "source") == f"`{embedded.source_url}`"
    assert _row(header, "warehouse") == f"`{embedded.warehouse_url}`"
    # written once, whole: the header and every output are in the file papermill's run made
    assert path.name.endswith("-succeeded.ipynb") and not list(path.parent.glob("*-running.ipynb"))

    # the cycle's record: readable UTC bounds per table and a chart, no JSON dump to read
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("window from" in t and "2026-03-02 00:00:00 UTC" in t and "archived" in t
               for t in tables)
    svg = [o["data"]["image/svg+xml"] for o in outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svg) == 1 and "rows per table" in svg[0]
    row = recent_runs("cycle", warehouse=embedded.warehouse_url).iloc[0]
    assert row.status == "succeeded" and row.notebook_path == str(path)
    assert row.pid > 0 and row.host and json.loads(row.figures)["ecs_order_info"]["rows_merged"] > 0

    html = path.with_suffix(".html").read_text()
    assert '<script src="http' not in html and "cdnjs" not in html and "unpkg" not in html
    assert "require.js" not in html and "MathJax.js" not in html
    assert 'data-mime-type="image/svg+xml"' in html  # the chart, embedded
    assert "Run 1 of job" in html and "succeeded" in html


def test_failed_run_header_names_the_error(embedded):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3, source=embedded.source_url)
    res = _ot(embedded, "run", "cycle", "-p", "as_of", "not-a-date", "--json")
    assert res.returncode == 2, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "failed" and out["exit_code"] == 2 and "UsageError" in out["error"]
    nb = nbformat.read(out["notebook"], as_version=4)
    header = _header(nb)
    assert "FAILED" in header.splitlines()[0]
    status = _row(header, "status")
    assert status.startswith("**failed** — `UsageError: ") and "not-a-date" in status
    assert re.search(r"\(cell In \[\d+\]\)$", status)


def test_cycle_record_table_and_chart(embedded):
    simulate("2026-03-03", start="2026-03-01", orders_per_day=30, seed=8, source=embedded.source_url)
    result = catch_up("2026-03-03T00:00:00Z", start="2026-03-01T12:00:00Z", step="12h",
                      source=embedded.source_url, warehouse=embedded.warehouse_url)[-1]
    frame = table_frame(result)
    assert list(frame.index) == list(result.tables)
    for name, run in result.tables.items():
        assert frame.cell(name, "merged") == run.rows_merged
        assert frame.cell(name, "window to") == "2026-03-03 00:00:00 UTC"
        assert frame.cell(name, "window from").endswith(" UTC")
    assert frame.column("archived") == [
        result.lifecycle["tables"][t]["archived"] for t in result.tables]
    root = ET.fromstring(chart_svg(result))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "table" in texts and "rows" in texts and set(result.tables) <= set(texts)
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == len(result.tables) * len(STAGES)
    html = frame._repr_html_()
    assert "<th>window from</th>" in html
    for name, run in result.tables.items():  # each table's row: its label, then its window
        assert f"<tr><th>{name}</th><td>{frame.cell(name, 'window from')}</td>" in html
        assert f"<td>{run.rows_merged}</td>" in html
    assert lifecycle_frame(result).index[0].startswith("cutoff")
    assert Grid("t", ("v",), {"<b>": ("a&b",)})._repr_html_().count("&lt;b&gt;") == 1
    tallest = max(bars, key=lambda r: float(r.get("height")))
    assert str(max(max(frame.column(s)) for s in STAGES)) in tallest.find(f"{SVG}title").text.replace(",", "")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _kill_mid_run(pair, as_of: str) -> int:
    """Start `ot run cycle` held inside its cycle, SIGKILL the runner (and its kernel, as a
    lost machine would), return the runner's pid."""
    env = _env(pair, OT_PAUSEPOINT="after_load:ecs_order_info=60")
    proc = subprocess.Popen(OT + ["run", "cycle", "-p", "as_of", as_of], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    holder = Path(f"{pair.tmp}/warehouse.duckdb.cycle.lock.json")
    deadline = time.monotonic() + 90
    while not (holder.exists() and "run " in holder.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
        time.sleep(0.1)
    time.sleep(1.0)
    kernels = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for k in kernels:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.pid


@pytest.mark.slow
def test_killed_run_is_marked_abandoned_by_runs_and_by_the_next_run(embedded):
    simulate("2026-03-03", start="2026-03-01", orders_per_day=20, seed=5, source=embedded.source_url)
    pid = _kill_mid_run(embedded, "2026-03-02T00:00:00Z")
    time.sleep(0.5)
    runs = recent_runs("cycle", warehouse=embedded.warehouse_url)
    assert runs.status.tolist() == ["running"] and int(runs.pid.iloc[0]) == pid

    listed = _ot(embedded, "runs")
    assert listed.returncode == 0, listed.stderr
    row = recent_runs("cycle", warehouse=embedded.warehouse_url).iloc[0]
    assert row.status == "abandoned" and f"pid {pid}" in row.error and "abandoned" in listed.stdout

    pid2 = _kill_mid_run(embedded, "2026-03-02T00:00:00Z")
    res = _ot(embedded, "run", "cycle", "-p", "as_of", "2026-03-03T00:00:00Z", "--json")
    assert res.returncode == 0, res.stderr
    runs = recent_runs("cycle", warehouse=embedded.warehouse_url).sort_values("run_id")
    assert runs.status.tolist() == ["abandoned", "abandoned", "succeeded"]
    assert f"pid {pid2}" in runs.iloc[1].error
    assert json.loads(res.stdout)["run_id"] == 3


def test_list_parameters_from_the_command_line():
    spec = load_catalogue().job("monthly_compare")
    for given, want in [("uti", ["uti"]), ("ecs,uti", ["ecs", "uti"]), (" ecs , uts ", ["ecs", "uts"]),
                        ('["ecs", "uti"]', ["ecs", "uti"]), (["uts"], ["uts"])]:
        assert resolve_parameters(spec, {"tables": given})["tables"] == want, given
    with pytest.raises(JobError, match=r"'tables' expects a list"):
        resolve_parameters(spec, {"tables": "[ecs"})
    with pytest.raises(JobError, match=r"'tables' expects a list"):
        resolve_parameters(spec, {"tables": '["ecs", "uti"'})


@pytest.mark.slow
def test_monthly_compare_and_rotate_record_figures(embedded):
    simulate("2026-03-06", start="2026-03-01", orders_per_day=20, seed=9, source=embedded.source_url)
    catch_up("2026-03-06T00:00:00Z", start="2026-03-01T00:00:00Z", step="1d",
             source=embedded.source_url, warehouse=embedded.warehouse_url)
    res = _ot(embedded, "run", "monthly_compare", "-p", "month", "2026-03", "-p", "tables", "uti",
              "--json")
    assert res.returncode == 0, res.stderr + res.stdout
    rot = _ot(embedded, "run", "rotate_periods", "-p", "as_of", "2026-03-06T00:00:00Z")
    assert rot.returncode == 0, rot.stderr
    runs = recent_runs(warehouse=embedded.warehouse_url).set_index("job")
    monthly = json.loads(runs.loc["monthly_compare", "figures"])
    assert monthly["month"] == "2026-03" and [t["table"] for t in monthly["tables"]] == ["uni_tracking_info"]
    rotated = json.loads(runs.loc["rotate_periods", "figures"])
    assert set(rotated) == {"as_of", "created", "existing", "missing_grants"}
    assert rotated["as_of"].startswith("2026-03-06")


def test_an_older_job_runs_table_gets_the_new_columns(pair):
    """A table created before pid/host existed gains them on first use, rows kept."""
    import sqlalchemy as sa

    from ot_core.config import load_config
    from ot_core.db.connect import open_database
    from ot_core.db.schema import ddl
    from ot_core.engines import backend_for
    from ot_core.jobs import records
    from ot_core.timeutil import utcnow

    cfg = load_config()
    eng = sa.create_engine(pair.warehouse_url)
    backend = backend_for(eng)
    new = records.job_runs_table(cfg, backend)
    old = sa.Table(new.name, sa.MetaData(), *[c.copy() for c in new.columns
                                              if c.name not in ("pid", "host")], schema=new.schema)
    with eng.begin() as c:
        backend.create_schema(c, cfg.schemas.control)
        c.exec_driver_sql(ddl(old, backend))
        c.execute(sa.insert(old).values(run_id=1, job="cycle", status="running",
                                        started_at=datetime(2026, 3, 1)))
    run_id = records.start_run(open_database("warehouse", pair.warehouse_url), cfg, "cycle", {},
                               utcnow(), "x-running.ipynb")
    with eng.connect() as c:
        rows = c.execute(sa.text(f"SELECT run_id, status, pid, host FROM {cfg.schemas.control}."
                                 "ot_job_runs ORDER BY run_id")).fetchall()
    eng.dispose()
    assert run_id == 2
    assert [(r[0], r[1]) for r in rows] == [(1, "abandoned"), (2, "running")]
    assert rows[0][2] is None and rows[1][2] == os.getpid() and rows[1][3]

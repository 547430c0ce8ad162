"""The audit trail of job runs (docs/audit.md): records written once, read-only, signed,
with an HTML twin, their SHA-256 chained in ot_job_runs; ``ot runs verify`` finds a changed,
a missing, a deleted and a re-ordered record."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa
from nbformat.sign import NotebookNotary

from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.jobs import audit, records
from ot_core.simulate import simulate
from ot_core.timeutil import utcnow

ROOT = Path(__file__).resolve().parent.parent
OT = [sys.executable, "-m", "ot_core.cli"]


def _ot(pair, *args) -> subprocess.CompletedProcess:
    env = pair.process_env(JUPYTER_DATA_DIR=str(pair.tmp / "jupyter-data"))
    return subprocess.run(OT + list(args), env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _rows(url: str) -> list:
    cfg = load_config()
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            t = records.job_runs_table(cfg, __import__("ot_core.engines", fromlist=["x"]).backend_for(c))
            return list(c.execute(sa.select(t).order_by(t.c.run_id)).fetchall())
    finally:
        eng.dispose()


def _seal_runs(pair, n: int) -> list[Path]:
    """``n`` sealed records written as the runner writes them (no kernel: a notebook with a
    header cell), each with its finished row."""
    cfg = load_config()
    paths = []
    for i in range(n):
        db = open_database("warehouse", pair.warehouse_url)
        started = utcnow().replace(microsecond=0) + timedelta(seconds=i)
        run_id = records.start_run(db, cfg, "cycle", {"i": i}, started, None)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Run {run_id}")])
        path = pair.tmp / "runs" / f"cycle-{run_id}-succeeded.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        sealed = audit.seal(nb, path)
        records.finish_run(db, cfg, run_id, status="succeeded", ended=started, notebook_path=str(path),
                           error=None, figures=None,
                           checksums=(sealed.notebook_sha256, sealed.html_sha256))
        paths.append(path)
    return paths


def _exec(url: str, sql: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(sql.format(t=f"{load_config().schemas.control}.ot_job_runs"))
    eng.dispose()


@pytest.fixture(autouse=True)
def _jupyter_data(monkeypatch, tmp_path):
    """The notary's key and signature database in the test's folder, not the user's."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))


@pytest.mark.slow
def test_a_run_is_sealed_signed_read_only_and_chained(embedded):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3, source=embedded.source_url)
    ok = _ot(embedded, "run", "cycle", "-p", "as_of", "2026-03-02T00:00:00Z", "--json")
    bad = _ot(embedded, "run", "cycle", "-p", "as_of", "not-a-date", "--json")
    assert ok.returncode == 0 and bad.returncode == 2, ok.stderr + bad.stderr
    for res in (ok, bad):  # the kernel speaks over IPC: no warning about TCP in any run
        assert "without encryption" not in res.stderr and "IPKernelApp" not in res.stderr
        assert "Alternative text" not in res.stderr
    first, second = (Path(json.loads(r.stdout)["notebook"]) for r in (ok, bad))
    rows = _rows(embedded.warehouse_url)
    assert [(r.run_id, r.seal_seq) for r in rows] == [(1, 1), (2, 2)]
    assert rows[0].prev_sha256 is None and rows[1].prev_sha256 == rows[0].notebook_sha256
    for row, path in zip(rows, (first, second), strict=True):
        html = path.with_suffix(".html")
        assert row.notebook_sha256 == audit.sha256_file(path)
        assert row.html_sha256 == audit.sha256_file(html)
        for f in (path, html):  # nobody's to write: no write bit for anyone
            assert stat.S_IMODE(f.stat().st_mode) & 0o222 == 0, oct(f.stat().st_mode)
        nb = nbformat.read(path, as_version=4)
        notary = NotebookNotary(data_dir=str(embedded.tmp / "jupyter-data"))
        assert notary.check_signature(nb), "the record is not trusted: its charts would not render"
        # no kernel for JupyterLab to start; the one the run used is kept for the reader
        assert nb.metadata.kernelspec == {"display_name": "", "name": ""}
        assert nb.metadata.ot_record["kernelspec"]["name"] == "python3"
    svg = [o for c in nbformat.read(first, as_version=4).cells for o in c.get("outputs", [])
           if "image/svg+xml" in o.get("data", {})]
    assert svg and 'alt="chart' in first.with_suffix(".html").read_text()

    # the failed record ends with the one-line error, the traceback folded beneath it
    outs = [o for c in nbformat.read(second, as_version=4).cells for o in c.get("outputs", [])]
    err = [i for i, o in enumerate(outs) if o["output_type"] == "error"]
    assert len(err) == 1 and outs[err[0]]["traceback"] == [
        f"UsageError: {outs[err[0]]['evalue']}"] and "not-a-date" in outs[err[0]]["evalue"]
    detail = outs[err[0] + 1]["data"]["text/html"]
    assert detail.startswith("<details>") and "Traceback" in detail and "\x1b[" not in detail
    assert "<details>" in second.with_suffix(".html").read_text()

    listing = _ot(embedded, "runs")
    assert listing.returncode == 0
    assert f"record: {first.with_suffix('.html').as_uri()}" in listing.stdout
    verified = _ot(embedded, "runs", "verify")
    assert verified.returncode == 0 and "2 sealed records verified: OK" in verified.stdout


def test_verify_finds_a_changed_and_a_missing_record(embedded):
    paths = _seal_runs(embedded, 3)
    assert audit.verify(warehouse=embedded.warehouse_url).ok
    os.chmod(paths[1], 0o644)
    nb = nbformat.read(paths[1], as_version=4)
    nb.cells[0].source += " (edited)"
    nbformat.write(nb, paths[1])
    paths[2].with_suffix(".html").unlink()
    res = audit.verify(warehouse=embedded.warehouse_url)
    assert not res.ok
    assert [(f.run_id, f.kind) for f in res.problems] == [(2, "changed"), (3, "missing")]
    one = audit.verify(2, warehouse=embedded.warehouse_url)
    assert [(f.run_id, f.kind) for f in one.problems] == [(2, "changed")]
    assert audit.verify(1, warehouse=embedded.warehouse_url).ok
    cli = _ot(embedded, "runs", "verify", "2")
    assert cli.returncode == 1 and "run 2: CHANGED: notebook" in cli.stdout
    assert "FAILED: 1 problem(s)" in cli.stdout


def test_verify_finds_a_deleted_row(pair):
    _seal_runs(pair, 3)
    _exec(pair.warehouse_url, "DELETE FROM {t} WHERE run_id = 2")
    res = audit.verify(warehouse=pair.warehouse_url)
    assert [(f.run_id, f.kind) for f in res.problems] == [(3, "deleted-before")]
    _exec(pair.warehouse_url, "DELETE FROM {t} WHERE run_id = 1")  # the first one too
    assert [(f.run_id, f.kind) for f in audit.verify(warehouse=pair.warehouse_url).problems] == \
        [(3, "deleted-before")]
    cli = _ot(pair, "runs", "verify", "--json")
    assert cli.returncode == 1 and json.loads(cli.stdout)["ok"] is False


def test_verify_finds_reordered_rows(embedded):
    _seal_runs(embedded, 4)
    # runs 2 and 3 swap places in the chain, as if run 3 had been sealed first
    _exec(embedded.warehouse_url,
          "UPDATE {t} SET seal_seq = CASE run_id WHEN 2 THEN 3 ELSE 2 END WHERE run_id IN (2, 3)")
    res = audit.verify(warehouse=embedded.warehouse_url)
    assert [(f.run_id, f.kind) for f in res.problems] == [(2, "reordered"), (3, "reordered"),
                                                          (4, "reordered")]
    # run 3 names the run that really preceded it, and the one it follows now
    assert "sealed right after run 2, but now at seal 2, following run 1" in res.problems[1].detail
    cli = _ot(embedded, "runs", "verify")
    assert cli.returncode == 1 and "REORDERED" in cli.stdout


def test_a_record_is_never_overwritten(embedded):
    path = _seal_runs(embedded, 1)[0]
    before = audit.sha256_file(path)
    with pytest.raises(FileExistsError):
        audit.seal(nbformat.v4.new_notebook(), path)
    assert audit.sha256_file(path) == before


def test_a_v3_warehouse_upgrades_to_v4(pair):
    """A warehouse made by version 3 (job runs without the audit columns) gains them on
    first use, its rows kept, and records version 4."""
    from ot_core.db.schema import SCHEMA_VERSION, ddl, ensure, tables_for
    from ot_core.engines import backend_for

    assert SCHEMA_VERSION == 4
    cfg = load_config()
    eng = sa.create_engine(pair.warehouse_url)
    backend = backend_for(eng)
    tables = tables_for(cfg, backend)
    new_cols = {"notebook_sha256", "html_sha256", "seal_seq", "prev_sha256"}
    with eng.begin() as c:
        ensure(c, cfg, backend)
        c.exec_driver_sql(f"DROP TABLE {backend.qualified(cfg.schemas.control, 'ot_job_runs')}")
        old = sa.Table("ot_job_runs", sa.MetaData(), *[col.copy() for col in tables.job_runs.columns
                                                       if col.name not in new_cols],
                       schema=cfg.schemas.control)
        c.exec_driver_sql(ddl(old, backend))
        c.execute(sa.insert(old).values(run_id=1, job="cycle", status="succeeded",
                                        started_at=utcnow().replace(tzinfo=None)))
        c.execute(sa.update(tables.schema_version).values(version=3))
    with eng.begin() as c:
        ensure(c, cfg, backend)
    with eng.connect() as c:
        have = {x.lower() for x in backend.list_columns(c, cfg.schemas.control, "ot_job_runs")}
        version = c.execute(sa.select(tables.schema_version.c.version)).scalar_one()
        kept = c.execute(sa.select(tables.job_runs.c.run_id, tables.job_runs.c.seal_seq)).fetchall()
    eng.dispose()
    assert new_cols <= have and version == 4 and [tuple(r) for r in kept] == [(1, None)]
    res = audit.verify(warehouse=pair.warehouse_url)
    assert res.ok and res.checked == 0  # a row from before checksums: nothing to verify


def test_job_notebooks_name_no_missing_config_file():
    """Parameter comments point at files that exist (config/pipeline.yml is long gone)."""
    for path in (ROOT / "notebooks" / "jobs").glob("*.ipynb"):
        text = path.read_text()
        assert "config/pipeline.yml" not in text, path.name


def test_a_run_whose_kernel_died_ends_with_the_error(embedded, monkeypatch, tmp_path):
    """No cell raised (the kernel died under it): the record's last cell says why; sealed."""
    from ot_core.jobs.catalogue import Catalogue, JobSpec
    from ot_core.jobs.runner import execute

    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("code = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os\nos._exit(code)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "dies.ipynb")
    spec = JobSpec(name="dies", notebook="dies.ipynb", schedule="0 0 * * *",
                   notebooks_dir=str(tmp_path))
    run = execute("dies", catalogue=Catalogue(jobs={"dies": spec}))
    assert run.status == "failed" and "DeadKernel" in (run.error or ""), run.error
    last = nbformat.read(run.notebook, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("**The run failed here:**")
    assert "DeadKernel" in last.source
    assert audit.verify(warehouse=embedded.warehouse_url).ok


@pytest.mark.slow
def test_a_cell_past_the_job_timeout_is_stopped(embedded, monkeypatch, tmp_path):
    """The catalogue's timeout_seconds stops a run (it did not while the kernel manager was
    a blocking one): the run fails with the timeout, its record sealed."""
    from ot_core.jobs.catalogue import Catalogue, JobSpec
    from ot_core.jobs.runner import execute

    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("seconds = 300", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\ntime.sleep(seconds)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "sleepy.ipynb")
    spec = JobSpec(name="sleepy", notebook="sleepy.ipynb", schedule="0 0 * * *",
                   timeout_seconds=10, notebooks_dir=str(tmp_path))
    run = execute("sleepy", catalogue=Catalogue(jobs={"sleepy": spec}))
    assert run.status == "failed" and "CellTimeoutError" in (run.error or ""), run.error
    assert (run.ended - run.started).total_seconds() < 120
    assert audit.verify(warehouse=embedded.warehouse_url).ok

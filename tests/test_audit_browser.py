"""An audit record opened in a real JupyterLab (Chromium driven by Playwright) stays as it
was written: its charts render (the record is signed, so trusted), and left open past
several autosave intervals (set to 2 s here) its SHA-256 is the one ``ot_job_runs`` holds
and ``ot runs verify`` still passes. Deselected by default (marker ``browser``);
``.ci/run`` runs it in its browser step. Without Chromium or Playwright it skips, saying
how to get them; under CI=true it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.browser import wait_for

from ot_core.jobs.audit import sha256_file

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AUTOSAVE_SECONDS = 2
SETTINGS = {  # autosave on, and often: a record that became "modified" would be rewritten
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings":
        {"autosave": True, "autosaveInterval": AUTOSAVE_SECONDS},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}
PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"


def _need(condition: bool, why: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ot(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ot_core.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_an_open_record_is_not_changed_by_jupyterlab(tmp_path):
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is missing: pip install -e '.[dev]'")
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "JUPYTER"))
           or k.startswith("OT_TEST_")}
    # the runner signs into this Jupyter data folder and the lab trusts what is signed there
    env.update(OT_DATA_DIR=str(tmp_path / "data"), OT_RUNS_DIR=str(runs),
               JUPYTER_DATA_DIR=str(tmp_path / "jdata"), JUPYTER_CONFIG_DIR=str(tmp_path / "jconf"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jrt"), MPLBACKEND="Agg")
    demo = _ot(env, "demo", "--days", "2", "--orders-per-day", "40")
    assert demo.returncode == 0, demo.stderr
    run = _ot(env, "run", "cycle", "--json")
    assert run.returncode == 0, run.stderr
    record = Path(json.loads(run.stdout)["notebook"])
    before = sha256_file(record)
    (tmp_path / "as_written.ipynb").write_bytes(record.read_bytes())
    rel = record.relative_to(runs).as_posix()

    settings = tmp_path / "settings"
    for name, value in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp_path / "jupyter.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={runs}", f"--LabApp.user_settings_dir={settings}",
             f"--LabApp.workspaces_dir={tmp_path / 'ws'}", "--LabApp.extension_manager=readonly",
             "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and urllib.request.urlopen(
            f"{base}/api/status?token={token}", timeout=2).status == 200,
            f"jupyter lab to answer ({log_path})", timeout=90)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{rel}?reset&token={token}")
            wait_for(lambda: page.evaluate(
                f"() => !!({PANEL}) && {PANEL}.context.path === '{rel}' && {PANEL}.context.isReady"),
                "the record open")
            # the record names no kernel to start: JupyterLab asks, and we view it without one
            no_kernel = page.locator(".jp-Dialog button", has_text="No Kernel")
            wait_for(lambda: no_kernel.count() > 0, "JupyterLab's kernel question", timeout=30)
            no_kernel.first.click()
            wait_for(lambda: page.locator(".jp-Notebook .jp-RenderedSVG img, "
                                          ".jp-Notebook .jp-RenderedSVG svg").count() > 0,
                     "the cycle's chart rendered (the record is trusted)")
            page.screenshot(path=str(tmp_path / "record_opened.png"), full_page=True)
            header = f"Run {json.loads(run.stdout)['run_id']} of job"
            wait_for(lambda: header in page.locator(".jp-Notebook").inner_text(),
                     "the run's header rendered")
            assert "IPython.core.display.SVG object" not in page.locator(".jp-Notebook").inner_text()
            # left open well past the autosave interval, then looked at again
            time.sleep(AUTOSAVE_SECONDS * 5)
            dirty = page.evaluate(f"() => {PANEL}.context.model.dirty")
            kernel = page.evaluate(f"() => Boolean({PANEL}.sessionContext.session?.kernel)")
            page.screenshot(path=str(tmp_path / "record_open.png"), full_page=True)
            browser.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    assert dirty is False, "JupyterLab marked the record modified"
    assert kernel is False, "a kernel was started for the record"
    assert sha256_file(record) == before, "the record changed while it was open"
    verified = _ot(env, "runs", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

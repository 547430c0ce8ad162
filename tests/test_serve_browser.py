"""``ot serve`` in a real browser: a visitor without the token is refused (sent to the login
page, no data), one with it is served the view; the token is in neither the kernels'
environment, the server's command line nor its log. Chromium driven by Playwright, as
tests/test_browser.py; deselected by default (marker ``browser``), run by ``.ci/run``."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from test_browser import (
    ARGS,
    CHROMIUM,
    _free_port,
    _listening,
    _need,
    _stop,
    _text,
    drawn_or_stuck,
    wait_for,
)

pytestmark = pytest.mark.browser
VIEW = "pipeline_health"
def _shows_view(page, url: str | None, what: str) -> None:
    """Wait until the page shows the view. A voila page can stall at "Executing N of M"
    with its kernel idle (tests/test_browser.py keeps the details); then a reload, with a
    fresh kernel, must draw it, and the stall is kept as a warning."""
    def drawn() -> bool:
        return page.locator(".jupyter-widgets").count() > 0 and "Freshness" in _text(page)

    stuck = drawn_or_stuck(page, drawn, 150)
    if stuck is None:
        return
    warnings.warn(f"{what}: stalled: {stuck}; the page showed {_text(page)[:200]!r}",
                  stacklevel=1)
    page.goto(url or page.url, timeout=240_000, wait_until="commit")
    stuck = drawn_or_stuck(page, drawn, 150)
    assert stuck is None, f"{what} (reloaded): {stuck}"


def test_served_view_refuses_a_visitor_without_the_token(tmp_path):
    import psutil

    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is missing: pip install -e '.[dev]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_") or k.startswith("OT_TEST_")}
    env.update(OT_DATA_DIR=str(tmp_path / "data"), JUPYTER_CONFIG_DIR=str(tmp_path / "jconfig"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jruntime"), MPLBACKEND="Agg")
    ot = str(Path(sys.executable).parent / "ot")
    subprocess.run([ot, "demo", "--days", "2", "--orders-per-day", "100"], env=env, check=True,
                   capture_output=True, timeout=600)
    port, token = _free_port(), secrets.token_urlsafe(24)
    token_file = tmp_path / "view-token"
    token_file.write_text(token + "\n")
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen([ot, "serve", VIEW, f"--port={port}"],
                            env={**env, "OT_VIEW_TOKEN_FILE": str(token_file)},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and _listening(port), "ot serve to listen", 120)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            try:
                # no token: sent to the login page, nothing of the view
                stranger = browser.new_context().new_page()
                for url in (f"{base}/", f"{base}/?token=not-the-token-{secrets.token_hex(8)}"):
                    stranger.goto(url, timeout=60_000)
                    assert "/login" in stranger.url, stranger.url
                    assert stranger.locator("#password_input").count() == 1  # the login form
                    assert stranger.locator(".jupyter-widgets").count() == 0
                    assert "Freshness" not in _text(stranger)
                stranger.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
                # the token typed on the login page: served
                stranger.fill("#password_input", token)
                stranger.click("#login_submit")
                _shows_view(stranger, None, "the view after logging in")
                stranger.close()  # its kernel goes with it
                # the token in the link: served, with no code and no error shown
                visitor = browser.new_context().new_page()
                visitor.goto(f"{base}/?token={token}", timeout=240_000, wait_until="commit")
                _shows_view(visitor, f"{base}/?token={token}", "the view with the token")
                text = _text(visitor)
                assert "Traceback" not in text and "open_workbench" not in text
                visitor.screenshot(path=str(tmp_path / "served.png"), full_page=True)
            finally:
                browser.close()
        kernels = psutil.Process(proc.pid).children(recursive=True)
        assert kernels, "no kernel ran the view"
        for p in kernels:  # what a notebook could read: not the token, nor where it is
            assert "OT_VIEW_TOKEN" not in p.environ() and "OT_VIEW_TOKEN_FILE" not in p.environ()
        for p in [psutil.Process(proc.pid), *kernels]:
            assert token not in " ".join(p.cmdline())
    finally:
        _stop(proc)
        log.close()
    assert token not in log_path.read_text()

"""The analyst notebooks in a real browser: JupyterLab serving the repository, Chromium
driven by Playwright, every notebook under notebooks/explore run top to bottom, then each
view served by Voilà.

Seeds a warehouse with ``ot demo`` (plus one open exception), starts ``jupyter lab`` on a
free port with a random token and the workbench's pre-save hook, opens each notebook, runs
all cells, saves it (the file must stay as committed) and checks what an analyst sees: no
error output, widgets drawn as widgets (not their text repr), a chart, no cell cut with "…"
and no table wider than the page, a CSV that arrives as a browser download, nothing fetched
from the network, and one interaction per notebook that changes what is shown. Screenshots
go to a gallery folder (``OT_GALLERY_DIR``, default a temporary folder; docs/workbench.md
shows a few). Deselected by default (marker ``browser``); ``.ci/run`` runs it explicitly.
Without Chromium or Playwright it skips, saying how to get them; under CI=true it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.browser import wait_for

from ot_core.workbench.lab import lab_argv, voila_argv, voila_env

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks" / "explore").glob("*.ipynb"))
GALLERY = Path(os.environ.get("OT_GALLERY_DIR") or tempfile.mkdtemp(prefix="ot-gallery-"))
CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MART = "settlement_ods"
SEEDED_EXCEPTION = 9001
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# No autosave (the committed notebooks stay stripped), no news or update checks.
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


def _need(condition: bool, why: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)


# a voila page whose text has not moved for this long has stalled at "Executing N of M"
STALL_SECONDS = 60


def drawn_or_stuck(page, drawn, cap: float, idle: float = STALL_SECONDS) -> str | None:
    """Wait until ``drawn()``; None once it is, else why it never came: the page's text
    unchanged for ``idle`` seconds (a stuck page never moves again), or ``cap`` seconds in
    all. A stuck page is worth a reload; waiting the whole ``cap`` for it is not."""
    start = time.monotonic()
    seen, since = None, start
    while (now := time.monotonic()) - start < cap:
        try:
            if drawn():
                return None
        except Exception:  # noqa: BLE001 - the page is still loading
            pass
        text = _text(page)[:300]
        if text != seen:
            seen, since = text, now
        elif now - since > idle:
            return f"the page has shown {text[:60]!r} for {idle:.0f} s"
        time.sleep(0.5)
    return f"not drawn after {cap:.0f} s"


def _text(page) -> str:
    try:  # a short timeout: a page still loading has no body yet
        return page.locator("body").inner_text(timeout=5_000)
    except Exception as e:  # noqa: BLE001 - only for a failure message
        return f"(no text: {e})"


def shot(page, name: str, element: str | None = None) -> Path:
    """A full-page screenshot into the gallery; with ``element``, that element alone, the
    window made tall enough for JupyterLab (which scrolls inside the page) to show it whole."""
    GALLERY.mkdir(parents=True, exist_ok=True)
    path = GALLERY / f"{name}.png"
    if element is None:
        page.screenshot(path=str(path), full_page=True)
        return path
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 3200})
    try:
        page.wait_for_timeout(800)
        page.locator(element).first.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)
    return path


VIEW = ".jp-Notebook .jp-CodeCell:has(.widget-button)"  # the cell drawing the view


def watch_network(page, local: str) -> list[str]:
    """Record (and refuse) every request that leaves the local server: none is expected."""
    outside: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith((local, "data:", "blob:", "about:")):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    page.route("**/*", route)
    return outside


def what_an_analyst_sees(page, scope: str) -> None:
    """No cell cut with "…", no table cut at the right edge (wide ones wrap), no
    seconds-only axis labels in any table."""
    cut = page.evaluate(f"""() => [...document.querySelectorAll('{scope} td')]
        .map(td => td.innerText).filter(t => t.trim().endsWith('…'))""")
    assert cut == [], f"cells cut with …: {cut[:5]}"
    clipped = page.evaluate(f"""() => [...document.querySelectorAll('{scope} .ot-table')]
        .filter(d => d.offsetParent !== null && d.scrollWidth > d.clientWidth + 2)
        .map(d => d.innerText.slice(0, 60))""")
    assert clipped == [], f"tables wider than the page: {clipped}"


def download_csv(page, scope: str) -> str:
    """Download CSV → a link → a real browser download whose text is a CSV table."""
    page.locator(f"{scope} .widget-button", has_text="Download CSV").first.click()
    link = page.locator(f"{scope} a.ot-download").first
    wait_for(lambda: link.count() > 0 and link.is_visible(), "the download link")
    with page.expect_download() as info:
        link.click()
    download = info.value
    text = Path(download.path()).read_text(encoding="utf-8")
    assert download.suggested_filename.endswith(".csv") and "," in text.splitlines()[0]
    return download.suggested_filename


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sql(db: Path, sql: str, params: tuple = (), read_only: bool = False):
    """One statement on the DuckDB file (the notebook kernels release it between reads)."""
    import duckdb

    def attempt():
        con = duckdb.connect(str(db), read_only=read_only)
        try:
            return con.execute(sql, params).fetchall() or True
        finally:
            con.close()

    return wait_for(attempt, f"the warehouse file for {sql.split()[0]}", timeout=30)


def _alive(proc: subprocess.Popen, log: Path) -> bool:
    if proc.poll() is not None:
        pytest.fail(f"jupyter lab exited: {log.read_text()[-2000:]}")
    return True


def _stop(proc: subprocess.Popen) -> None:
    """Stop the jupyter server we started (its own process group: kernels go with it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[dict]:
    _need(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _need(False, "playwright is missing: pip install -e '.[dev]'")
    tmp = tmp_path_factory.mktemp("lab")
    data = tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_") or k.startswith("OT_TEST_")}
    env.update(OT_DATA_DIR=str(data), JUPYTER_CONFIG_DIR=str(tmp / "jconfig"),
               JUPYTER_RUNTIME_DIR=str(tmp / "jruntime"), MPLBACKEND="Agg")
    ot = Path(sys.executable).parent / "ot"
    subprocess.run([str(ot), "demo", "--days", "4", "--orders-per-day", "300"], env=env,
                   check=True, capture_output=True, timeout=600)
    wh = data / "warehouse.duckdb"
    orders = [r[0] for r in _sql(wh, f"SELECT order_id FROM {MART}.mart_uni_tracking_info "
                                      "ORDER BY order_id")]
    _sql(wh, f"INSERT INTO {MART}.order_tracking_exceptions (exception_id, order_id, "
             "source_table, row_key, exception_type, detected_at) VALUES (?, ?, "
             "'uni_tracking_spath', ?, 'ARCHIVE_ROUTING_GAP', now()::TIMESTAMP)",
         (SEEDED_EXCEPTION, orders[0], orders[0]))
    settings = tmp / "settings"
    for name, value in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp / "jupyter.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={ROOT}", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'ws'}",
         "--LabApp.extension_manager=readonly",
         # as the README's `ot notebooks --lab` starts it: the pre-save hook (and
         # --allow-root when root)
         *lab_argv()],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in NOTEBOOKS}
    try:
        wait_for(lambda: _alive(proc, tmp / "jupyter.log") and urllib.request.urlopen(
            f"{base}/api/status?token={token}", timeout=2).status == 200,
            "jupyter lab to answer", timeout=90)
        yield {"base": base, "token": token, "warehouse": wh, "other_order": orders[len(orders) // 2],
               "tmp": tmp, "env": env, "hashes": before}
    finally:
        _stop(proc)
        log.close()
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in NOTEBOOKS}
    assert after == before, "a notebook under notebooks/explore was saved by the browser run"


@pytest.fixture(scope="module")
def browser(lab) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(lab["tmp"] / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        try:
            yield ctx
        finally:
            ctx.close()


# -- the notebook in the page ------------------------------------------------------------------
PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = f"""() => {{
  const w = {PANEL};
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && w.context.isReady);
}}"""
ALL_RAN = f"""() => {{
  const w = {PANEL};
  const k = w.sessionContext.session.kernel;
  const code = w.content.widgets.filter(c => c.model.type === 'code');
  return k.status === 'idle' && code.length > 0 && code.every(c => c.model.executionCount !== null);
}}"""
ERRORS = f"""() => {{
  const w = {PANEL};
  const out = [];
  for (const c of w.content.widgets.filter(c => c.model.type === 'code')) {{
    const o = c.model.outputs.toJSON();
    for (const x of o) if (x.output_type === 'error') out.push(x.ename + ': ' + x.evalue);
  }}
  return out;
}}"""


SAVE = """async () => {
  await window.jupyterapp.commands.execute('docmanager:save');
  return true;
}"""


def open_and_run(page, lab: dict, notebook: Path) -> str:
    rel = notebook.relative_to(ROOT).as_posix()
    page.goto(f"{lab['base']}/lab/tree/{rel}?reset&token={lab['token']}")
    wait_for(lambda: page.evaluate(KERNEL_IDLE), f"{notebook.name}: kernel ready", timeout=180)
    wait_for(lambda: page.evaluate(f"() => !!({PANEL}) && {PANEL}.context.path === '{rel}'"),
             f"{notebook.name} open")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait_for(lambda: page.evaluate(ALL_RAN), f"{notebook.name}: every cell executed", timeout=240)
    wait_for(lambda: page.locator(".jp-Notebook .jupyter-widgets").count() > 0,
             f"{notebook.name}: widgets drawn")
    wait_for(lambda: page.locator(".jp-Notebook .jp-OutputArea img").count() > 0,
             f"{notebook.name}: a chart image")
    shot(page, f"lab_{notebook.stem}")
    assert page.evaluate(ERRORS) == []
    # saved with its outputs in the page: the pre-save hook writes it back as committed
    written = notebook.stat().st_mtime_ns
    page.evaluate(SAVE)
    wait_for(lambda: notebook.stat().st_mtime_ns != written, f"{notebook.name} saved")
    time.sleep(0.5)  # the write itself
    assert hashlib.sha256(notebook.read_bytes()).hexdigest() == lab["hashes"][notebook], \
        f"{notebook.name} changed on disk when saved with its outputs"
    first = page.locator(".jp-Notebook .jp-MarkdownCell").first.inner_text()
    assert "How to use" in first, f"{notebook.name}: the first cell says how to use the view"
    what_an_analyst_sees(page, ".jp-Notebook")
    text = page.locator(".jp-Notebook").inner_text()
    for repr_text in ("VBox(children=", "Output()", "Traceback", "HBox(children="):
        assert repr_text not in text, f"{notebook.name} shows {repr_text!r}"
    assert page.locator(".jp-Notebook .widget-button").count() > 0
    return text


def reopened(page, lab: dict, notebook: Path) -> None:
    """Opened again after its run was saved: nothing of the run is in the file, so no
    "model not found" in place of a widget; the first cell says to run it."""
    page.evaluate(SAVE)
    rel = notebook.relative_to(ROOT).as_posix()
    page.goto(f"{lab['base']}/lab/tree/{rel}?reset&token={lab['token']}")
    wait_for(lambda: page.evaluate(f"() => !!({PANEL}) && {PANEL}.context.path === '{rel}' "
                                   f"&& {PANEL}.context.isReady"), f"{notebook.name} reopened")
    page.wait_for_timeout(1500)
    text = notebook_text(page)
    assert "model not found" not in text and "Error displaying widget" not in text
    assert page.locator(".jp-Notebook .jp-OutputArea-output").count() == 0
    assert "Run All Cells" in text


def button(page, text: str):
    """A widget button in the notebook (not JupyterLab's own buttons of the same name)."""
    return page.locator(".jp-Notebook .widget-button", has_text=text).first


def notebook_text(page) -> str:
    return page.locator(".jp-Notebook").inner_text()


def interact_order_lookup(page, lab):
    other = str(lab["other_order"])
    assert f"Order {other}" not in notebook_text(page)
    box = page.locator(".jp-Notebook .widget-text input").first
    box.fill(other)
    box.press("Enter")
    wait_for(lambda: f"Order {other}" in notebook_text(page), f"order {other} shown after Enter")
    text = notebook_text(page)
    assert "Label created (CREATED)" in text and "\tDLV\t" not in text  # codes have names
    download_csv(page, ".jp-Notebook")


def pick_partner(page, scope: str, index: int) -> str:
    """Type in the searchable partner box the way an analyst does: part of an id narrows
    the list; choosing an entry enters its text. Returns the partner id chosen."""
    box = page.locator(f"{scope} .widget-text input[list]").first
    options = box.evaluate("i => [...i.list.options].map(o => o.value)")
    assert len(options) > 100 and " · " in options[0]  # every partner, with its order count
    assert any(o.endswith(" · 1 order") for o in options) or all(
        not o.endswith(" 1 orders") for o in options)
    choice = options[index]
    box.fill(choice.split()[0][:2])  # part of an id: not a partner yet, nothing changes
    box.fill(choice)
    box.press("Enter")
    return choice.split()[0]


def interact_partner_dashboard(page, lab):
    box = page.locator(".jp-Notebook .widget-text input[list]").first
    first_id = box.input_value().split()[0]
    assert f"Partner {first_id}" in notebook_text(page)
    second_id = pick_partner(page, ".jp-Notebook", 1)
    wait_for(lambda: f"Partner {second_id}" in notebook_text(page), f"partner {second_id} shown")
    assert f"Partner {first_id}" not in notebook_text(page)
    assert "delivered orders" in notebook_text(page)  # the count beside the percentiles
    download_csv(page, ".jp-Notebook")


def interact_exceptions_triage(page, lab):
    label = f"#{SEEDED_EXCEPTION} ARCHIVE_ROUTING_GAP"
    assert page.locator(".jp-Notebook .widget-select select").first.evaluate(
        "s => s.selectedIndex") == -1  # nothing pre-selected
    page.locator(".jp-Notebook .widget-select select").first.select_option(
        label=page.locator(".jp-Notebook .widget-select option", has_text=label).first.inner_text())
    page.locator(".jp-Notebook textarea").first.fill("checked in the browser test")
    # the typed values reach the kernel as state updates, which the widget manager may hold
    # back while earlier ones are pending; a click is sent at once: give the text a moment,
    # as a person does between typing and clicking
    page.wait_for_timeout(1500)
    button(page, "Resolve…").click()
    try:
        wait_for(lambda: f"Resolve {label}" in notebook_text(page), "the confirmation question",
                 timeout=60)
    except BaseException as e:
        shot(page, "lab_exceptions_triage_failed")
        raise AssertionError(f"no question; the notebook shows: {notebook_text(page)[-1500:]}"
                             ) from e
    button(page, "Confirm").click()
    wait_for(lambda: f"Resolved {label}" in notebook_text(page), "the resolved message")
    resolved = _sql(lab["warehouse"], f"SELECT resolved_at, notes, resolved_by FROM {MART}."
                    "order_tracking_exceptions WHERE exception_id = ?", (SEEDED_EXCEPTION,),
                    read_only=True)
    assert resolved[0][0] is not None
    assert resolved[0][1].endswith("checked in the browser test")
    assert resolved[0][2]  # who resolved it: recorded by the write path, nothing typed
    download_csv(page, ".jp-Notebook")


def interact_pipeline_health(page, lab):
    assert "No job runs recorded yet" in notebook_text(page)
    ot = Path(sys.executable).parent / "ot"
    subprocess.run([str(ot), "run", "cycle"], env=lab["env"], check=True, capture_output=True,
                   timeout=300)
    button(page, "Refresh").click()
    wait_for(lambda: "Job runs" in notebook_text(page) and "succeeded" in notebook_text(page),
             "the cycle run after Refresh")
    assert "No job runs recorded yet" not in notebook_text(page)
    wait_for(lambda: page.locator(".jp-Notebook .jp-OutputArea img").count() >= 2,
             "the run-duration and freshness charts")  # drawn one after the other
    open_record(page, ".jp-Notebook", lab)
    download_csv(page, ".jp-Notebook")


def open_record(page, scope: str, lab: dict) -> None:
    """Open record shows the run's executed notebook inline; its file is not touched and
    its download arrives."""
    import glob

    records = sorted(glob.glob(str(lab["tmp"] / "data" / "runs" / "**" / "*.ipynb"),
                               recursive=True))
    assert records, "ot run cycle wrote no record"
    before = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in records}
    page.locator(f"{scope} .widget-button", has_text="Open record").first.click()
    frame = page.locator(f"{scope} iframe.ot-record").first
    wait_for(lambda: frame.count() > 0, "the record shown inline")
    body = page.frame_locator(f"{scope} iframe.ot-record").first.locator("body")
    wait_for(lambda: "cycle" in body.inner_text(), "the record's text in its frame")
    with page.expect_download() as info:
        page.locator(f"{scope} a.ot-record-download").first.click()
    assert "cycle" in Path(info.value.path()).read_text(encoding="utf-8")
    after = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in records}
    assert after == before  # reading a record never changes it
    shot(page, f"{'lab' if scope.startswith('.jp') else 'voila'}_pipeline_health_record",
         VIEW if scope.startswith(".jp") else None)


INTERACTIONS = {
    "order_lookup": interact_order_lookup,
    "partner_dashboard": interact_partner_dashboard,
    "exceptions_triage": interact_exceptions_triage,
    "pipeline_health": interact_pipeline_health,
}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_in_browser(lab, browser, notebook):
    page = browser.new_page()
    page.set_default_timeout(60_000)
    outside = watch_network(page, lab["base"])
    try:
        open_and_run(page, lab, notebook)
        INTERACTIONS[notebook.stem](page, lab)
        shot(page, f"lab_{notebook.stem}_after")
        shot(page, f"lab_{notebook.stem}_view", VIEW)
        assert page.evaluate(ERRORS) == []
        assert "Traceback" not in notebook_text(page)
        what_an_analyst_sees(page, ".jp-Notebook")
        assert outside == [], f"JupyterLab fetched from the network: {outside}"
        reopened(page, lab, notebook)
    finally:
        try:
            page.evaluate(f"() => {PANEL}.sessionContext.shutdown()")
        except Exception:  # noqa: BLE001 - the page may be gone already
            pass
        page.close()


# -- voila: the two read-only views served without code ------------------------------------
VOILA_NOTEBOOKS = tuple(p.stem for p in NOTEBOOKS)


def _listening(port: int) -> bool:
    """The port answers (a page request would execute the notebook, so only connect)."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# Each voila kernel writes every thread's stack to a file on SIGUSR1: a page stuck at
# "Executing N of M" then says where its kernel is.
STACKS_ON_SIGNAL = """import faulthandler as _fh, os as _os, signal as _signal
_ot_test_stacks = open(_os.path.join(_os.environ["OT_TEST_STACKS"], f"kernel-{_os.getpid()}.txt"), "w")
_fh.register(_signal.SIGUSR1, file=_ot_test_stacks, all_threads=True)
"""


def _kernel_stacks(proc: subprocess.Popen, where: Path) -> str:
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return "(voila has exited)"
    for child in children:
        try:
            child.send_signal(signal.SIGUSR1)
        except psutil.NoSuchProcess:
            pass
    time.sleep(2)
    return "\n".join(f"{p.name}:\n{p.read_text()}" for p in sorted(where.glob("kernel-*.txt"))
                     ) or "(no kernel wrote its stacks)"


def _voila_page(lab, browser, name: str, tmp: Path):
    """Start voila on one notebook and load its page until a chart is drawn; on a page that
    stalls, fail with what the page, voila's log and its kernels' stacks show."""
    notebook = ROOT / "notebooks" / "explore" / f"{name}.ipynb"
    startup = tmp / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-stacks.py").write_text(STACKS_ON_SIGNAL)
    env = voila_env({**lab["env"], "IPYTHONDIR": str(tmp / "ipython"),
                     "OT_TEST_STACKS": str(tmp)})
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp / "voila.log").open("w")
    proc = subprocess.Popen(  # as `ot notebooks --voila NAME` starts it: the offline template
        [sys.executable, "-m", "voila", *voila_argv(notebook, port), f"--Voila.token={token}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    page = browser.new_page()
    page.set_default_timeout(60_000)
    page.outside = watch_network(page, base)
    try:
        wait_for(lambda: _alive(proc, tmp / "voila.log") and _listening(port), "voila to listen")
        # voila runs the notebook before the page loads: on a busy 2-core machine that takes
        # longer than a page load usually may
        page.goto(f"{base}/?token={token}", timeout=240_000, wait_until="commit")
        drawn = ".jupyter-widgets img" if name != "exceptions_triage" else ".jupyter-widgets button"
        # a stuck page is retried (see the test); a page that moves gets up to 180 s
        stuck = drawn_or_stuck(page, lambda: page.locator(drawn).count() > 0, cap=180)
        if stuck:
            page.screenshot(path=str(tmp / f"voila-{name}-stalled.png"), full_page=True)
            stacks = _kernel_stacks(proc, tmp)
            log.flush()
            raise VoilaStalled(
                f"{name}: no chart in voila ({stuck}); the page shows {_text(page)[:300]!r}; "
                f"voila's log ends: {(tmp / 'voila.log').read_text()[-2000:]}\n"
                f"its kernels' stacks: {stacks[-6000:]}")
    except BaseException:
        page.close()
        _stop(proc)
        log.close()
        raise
    return proc, page, log, base, token


class VoilaStalled(Exception):
    """A voila page that never finished running its notebook."""


@pytest.mark.parametrize("name", VOILA_NOTEBOOKS)
def test_voila_serves_read_only_views(lab, browser, name, tmp_path):
    import importlib.util
    import urllib.error

    _need(importlib.util.find_spec("voila") is not None, "voila is missing: pip install -e '.[dev]'")
    # Seen in CI (never in runs of this file alone): a page stuck at "Executing 3 of 6"
    # while its kernel sat idle in its event loop, no cell running, with ipykernel 7.4 and
    # 6.31 alike: the cell's request or its reply lost between voila and the kernel. A
    # fresh voila, kernel and all, must draw the page within three tries (two stalls in a
    # row were seen once); what a stalled one showed is kept as a warning with its kernels'
    # stacks.
    for attempt in (1, 2, 3):
        try:
            proc, page, log, base, token = _voila_page(lab, browser, name,
                                                       tmp_path / f"try{attempt}")
            break
        except VoilaStalled as stalled:
            if attempt == 3:
                raise
            warnings.warn(str(stalled), stacklevel=1)
    try:
        text = page.locator("body").inner_text()
        assert "open_workbench" not in text and "import" not in text  # no code is served
        for bad in ("Traceback", "VBox(children=", "Output()", ".ipynb", "`ot ", "ot run "):
            assert bad not in text, f"{name} in voila shows {bad!r}"
        assert "How to use" in text
        what_an_analyst_sees(page, "body")
        if name == "partner_dashboard":
            second = pick_partner(page, "body", 1)
            wait_for(lambda: f"Partner {second}" in page.locator("body").inner_text(),
                     f"partner {second} shown in voila")
        elif name == "pipeline_health":
            def lag() -> str:
                return next(x for x in page.locator("body").inner_text().splitlines()
                            if x.startswith("Freshness"))
            before = lag()
            time.sleep(1.1)  # the lag is shown to the second
            page.locator(".widget-button", has_text="Refresh").first.click()
            wait_for(lambda: lag() != before, "the freshness line re-read after Refresh")
            open_record(page, "body", lab)
        elif name == "order_lookup":
            assert "Label created (CREATED)" in text
        else:  # who resolves is recorded by the database, never typed
            assert not page.locator(".widget-text input").count()
        download_csv(page, "body")
        what_an_analyst_sees(page, "body")
        shot(page, f"voila_{name}")
        assert page.outside == [], f"the voila page fetched from the network: {page.outside}"
        others = [n for n in VOILA_NOTEBOOKS if n != name]
        with pytest.raises(urllib.error.HTTPError):  # only the one notebook is served
            urllib.request.urlopen(f"{base}/voila/render/{others[0]}.ipynb?token={token}",
                                   timeout=30)
    finally:
        page.close()
        _stop(proc)
        log.close()

"""``ot notebooks``: the analyst notebooks copied out of the package where the user wants
them, edited copies never replaced silently, and ``--lab`` serving that folder in a real
JupyterLab (the wheel without the lab extra is tested in test_install.py)."""

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
from click.testing import CliRunner

from ot_core.cli import main
from ot_core.resources import explore_notebooks_dir

SHIPPED = sorted(p.name for p in explore_notebooks_dir().glob("*.ipynb"))


def test_copies_then_keeps_edited_copies_then_overwrites_saving_them(tmp_path):
    dest = tmp_path / "nb"
    first = CliRunner().invoke(main, ["notebooks", str(dest)])
    assert first.exit_code == 0, first.output
    assert len(SHIPPED) == 4 and sorted(p.name for p in dest.iterdir()) == SHIPPED
    for name in SHIPPED:
        assert (dest / name).read_bytes() == (explore_notebooks_dir() / name).read_bytes()
        assert f"copied    {name}" in first.output
    mine = dest / SHIPPED[0]
    edited = mine.read_text().replace('"cells": [', '"cells": [ ', 1)
    mine.write_text(edited)
    again = CliRunner().invoke(main, ["notebooks", str(dest)])
    assert again.exit_code == 0, again.output
    assert f"kept      {SHIPPED[0]}: differs from the shipped version" in again.output
    assert all(f"current   {n}" in again.output for n in SHIPPED[1:])
    assert mine.read_text() == edited
    forced = CliRunner().invoke(main, ["notebooks", str(dest), "--overwrite"])
    assert forced.exit_code == 0, forced.output
    saved = [p for p in dest.iterdir() if p.name not in SHIPPED]
    assert len(saved) == 1 and saved[0].read_text() == edited
    assert f"replaced  {SHIPPED[0]} (your copy saved as {saved[0].name})" in forced.output
    assert mine.read_bytes() == (explore_notebooks_dir() / SHIPPED[0]).read_bytes()


def test_a_file_as_destination_is_a_usage_error(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    res = CliRunner().invoke(main, ["notebooks", str(target)])
    assert res.exit_code == 2 and target.read_text() == "mine"


def test_voila_names_the_views_it_can_serve(tmp_path):
    CliRunner().invoke(main, ["notebooks", str(tmp_path)])
    res = CliRunner().invoke(main, ["notebooks", str(tmp_path), "--voila", "nope"])
    assert res.exit_code == 2 and "partner_dashboard" in res.output and "nope" in res.output
    res = CliRunner().invoke(main, ["notebooks", str(tmp_path), "--voila", "x", "--lab"])
    assert res.exit_code == 2 and "pick one" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_lab_serves_the_copies(tmp_path):
    """``ot notebooks DEST --lab`` becomes JupyterLab rooted at DEST (configured the way a
    user configures Jupyter: a config file; here a token and no browser) on the port given,
    on loopback; run as root, it starts without the user adding --allow-root."""
    port, token = _free_port(), secrets.token_hex(16)
    conf = tmp_path / "jconf"
    conf.mkdir()
    (conf / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"open_browser": False}, "IdentityProvider": {"token": token}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "JUPYTER"))}
    env.update(JUPYTER_CONFIG_DIR=str(conf), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               OT_DATA_DIR=str(tmp_path / "data"))
    dest = tmp_path / "analysis"
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ot_core", "notebooks", str(dest), "--lab",
                             "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    listing: list[str] = []
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2) as r:
                    listing = sorted(i["name"] for i in json.load(r)["content"])
                break
            except OSError:
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    assert listing == SHIPPED, Path(tmp_path / "lab.log").read_text()[-3000:]

"""The ``ot`` executable leaves with ``os._exit`` once its command is done: what an ordinary
exit does that matters must still happen (streams flushed, exit handlers run, the warehouse
file closed by the command itself, live threads finished)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from support.lifecycle import Source, T

from ot_core.console import _exit_code

OT = Path(sys.executable).parent / "ot"


def _buffered(env: dict[str, str]) -> dict[str, str]:
    """The child's streams block-buffered, as in production (a flush left out must show)."""
    return {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}


def test_the_installed_ot_is_the_console_entry_point():
    assert "ot_core.console" in OT.read_text()


def test_ot_cycle_output_is_whole_and_the_warehouse_closed_when_the_process_ends(embedded):
    src = Source(embedded.source_url)
    for o in range(1, 41):
        src.order(o, T("2026-03-01") + o)
        src.state(o, T("2026-03-01") + o)
        src.event(o, T("2026-03-01") + o, T("2026-03-01T01:00:00") + o)
    res = subprocess.run([str(OT), "cycle", "--as-of", "2026-03-02", "--json"],
                         env=_buffered(embedded.process_env()), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # the whole document reached the pipe
    assert out["tables"]["ecs_order_info"]["rows_merged"] == 40
    wh = Path(embedded.warehouse_url.removeprefix("duckdb:///"))
    # DuckDB removes its write-ahead log when a connection closes (checkpoint); one left
    # behind would mean the process ended with the file still open
    assert wh.exists() and not Path(f"{wh}.wal").exists()
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM settlement_ods.mart_uni_tracking_spath"
                           ).fetchone() == (40,)


def test_ot_with_bad_input_exits_2_with_its_message(embedded):
    res = subprocess.run([str(OT), "cycle", "--as-of", "not-a-date"],
                         env=embedded.process_env(), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2
    assert "is not an ISO-8601 date" in res.stderr


def _leave_in_child(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(body).replace("TMP", repr(str(tmp_path)))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_buffered(dict(os.environ)), timeout=60)


def test_leave_runs_the_exit_handlers_and_flushes_the_streams(tmp_path):
    res = _leave_in_child("""
        import atexit, pathlib, sys
        from ot_core.console import leave
        atexit.register(lambda: pathlib.Path(TMP, "handler-ran").write_text("yes"))
        sys.stdout.write("buffered, no newline")
        sys.stderr.write("to stderr")
        leave(3)
        raise AssertionError("leave returned")
    """, tmp_path)
    assert res.returncode == 3, res.stderr
    assert res.stdout == "buffered, no newline"
    assert res.stderr == "to stderr"
    assert (tmp_path / "handler-ran").read_text() == "yes"


def test_leave_lets_a_live_thread_finish(tmp_path):
    res = _leave_in_child("""
        import pathlib, threading, time
        from ot_core.console import leave
        def work():
            time.sleep(0.3)
            pathlib.Path(TMP, "thread-done").write_text("yes")
        threading.Thread(target=work).start()
        leave(0)
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "thread-done").read_text() == "yes"


def test_leave_with_the_output_descriptors_closed(tmp_path):
    """Started with stdout and stderr closed (``ot jobs >&- 2>&-``), Python has no stream
    objects for them: leaving must still run the handlers and keep the exit code."""
    code = textwrap.dedent("""
        import atexit, pathlib
        from ot_core.console import leave
        atexit.register(lambda: pathlib.Path(TMP, "handler-ran").write_text("yes"))
        leave(4)
    """).replace("TMP", repr(str(tmp_path)))
    res = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, close_fds=True, timeout=60,
                         env=_buffered(dict(os.environ)),
                         preexec_fn=lambda: (os.close(1), os.close(2)))
    assert res.returncode == 4
    assert (tmp_path / "handler-ran").read_text() == "yes"


def test_leave_does_not_wait_for_daemon_threads(tmp_path):
    """A daemon thread (tqdm's monitor is one) does not hold the process: an ordinary exit
    would not wait for it either."""
    res = _leave_in_child("""
        import sys, threading, time
        from ot_core.console import leave
        class Teardown:  # says so if the interpreter is torn down (the ordinary exit)
            def __del__(self):
                sys.__stdout__.write("torn down")
        marker = Teardown()
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
        leave(0)
    """, tmp_path)
    assert res.returncode == 0 and res.stdout == ""  # the quick way, not waiting 600 s


@pytest.mark.parametrize(("value", "code"), [(None, 0), (0, 0), (2, 2), ("a message", 1)])
def test_exit_codes_follow_sys_exit(value, code, capsys):
    assert _exit_code(value) == code
    assert capsys.readouterr().err == ("a message\n" if isinstance(value, str) else "")

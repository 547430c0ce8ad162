"""`ot cycle` run by hand takes the cycle job's lock, so it never overlaps a scheduled run."""

from __future__ import annotations

import os
import subprocess
import sys

from ot_core.jobs.lock import held
from ot_core.simulate import simulate


def _ot(args, env):
    return subprocess.run([sys.executable, "-m", "ot_core.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cycle_command_exits_75_while_the_cycle_job_runs(embedded, monkeypatch):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3, source=embedded.source_url)
    for k, v in embedded.env().items():
        monkeypatch.setenv(k, v)
    env = {**os.environ}
    with held("cycle"):
        busy = _ot(["cycle", "--as-of", "2026-03-01T12:00:00Z"], env)
    assert busy.returncode == 75, busy.stderr
    assert "already running" in busy.stderr and "pid" in busy.stderr
    free = _ot(["cycle", "--as-of", "2026-03-01T12:00:00Z"], env)
    assert free.returncode == 0, free.stderr

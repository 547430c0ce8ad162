"""Named points where a test can kill or pause the process for real.

``OT_FAILPOINT=name[:table]`` sends SIGKILL at that point: crash-safety is proven by a
real kill between two steps, not by a simulated exception — nothing in ``finally`` blocks
or context managers runs, exactly as in a power cut or an OOM kill.
``OT_PAUSEPOINT=name[:table]=seconds`` sleeps there instead, so a test can hold a job
mid-run deterministically (e.g. to prove a second run of the job is refused); with
``OT_PAUSEPOINT_FILE`` set, that file is created when the pause begins, so the test acts
when the process is there, not after a guessed delay; with ``OT_PAUSEPOINT_RELEASE`` set,
the pause ends as soon as that file exists (the test says when it has seen enough).
Unset (the default), a failpoint costs two dict lookups.
"""

from __future__ import annotations

import os
import signal
import time


def _matches(wanted: str, name: str, table: str | None) -> bool:
    return wanted == name or (table is not None and wanted == f"{name}:{table}")


def failpoint(name: str, table: str | None = None) -> None:
    wanted = os.environ.get("OT_FAILPOINT")
    if wanted and _matches(wanted, name, table):
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("OT_PAUSEPOINT")
    if pause and "=" in pause:
        point, seconds = pause.rsplit("=", 1)
        if _matches(point, name, table):
            if marker := os.environ.get("OT_PAUSEPOINT_FILE"):
                with open(marker, "w") as f:
                    f.write(f"{name}:{table}\n")
            release = os.environ.get("OT_PAUSEPOINT_RELEASE")
            until = time.monotonic() + float(seconds)
            while time.monotonic() < until:
                if release and os.path.exists(release):
                    break
                time.sleep(min(0.1, max(0.0, until - time.monotonic())))

"""Named points where a test can kill the process for real (``OT_FAILPOINT=name[:table]``).

Crash-safety is proven by SIGKILL between two steps, not by a simulated exception: nothing
in ``finally`` blocks or context managers runs, exactly as in a power cut or an OOM kill.
Unset (the default), a failpoint costs one dict lookup.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str, table: str | None = None) -> None:
    wanted = os.environ.get("OT_FAILPOINT")
    if not wanted:
        return
    if wanted == name or (table is not None and wanted == f"{name}:{table}"):
        os.kill(os.getpid(), signal.SIGKILL)

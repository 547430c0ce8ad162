"""Order-tracking workbench: the library behind the CLI, the job notebooks and the explorers.

Packages by role: ``pipeline`` (extract, land, merge, lifecycle, cycle), ``quality``
(monitor, compare, checksum, conservation), ``workbench`` (explore, widgets), ``jobs``
(catalogue, runner, records, lock, scheduler), ``db`` (connections, the warehouse handle,
its tables) and ``engines`` (one module per database engine).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Short names notebooks and users have imported (``from ot_core import explore``): resolved
# on first use, so importing the package stays cheap.
_SHORT = {
    "explore": "ot_core.workbench.explore",
    "widgets": "ot_core.workbench.widgets",
    "monitor": "ot_core.quality.monitor",
    "compare": "ot_core.quality.compare",
    "maintenance": "ot_core.jobs.maintenance",
    "cycle": "ot_core.pipeline.cycle",
    "lifecycle": "ot_core.pipeline.lifecycle",
}


def __getattr__(name: str) -> Any:
    if name in _SHORT:
        return importlib.import_module(_SHORT[name])
    raise AttributeError(f"module 'ot_core' has no attribute {name!r}")

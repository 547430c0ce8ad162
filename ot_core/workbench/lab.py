"""Serving the analyst notebooks: JupyterLab that never saves outputs into them, and Voilà
pages that load nothing from the network.

A notebook saved with its outputs reopens with "model not found" in place of every widget
(the kernel that held them is gone) and shows up as a change in a checkout; so the server
strips outputs from the analyst notebooks on every save (a pre-save hook), whatever the
JupyterLab settings. Voilà's own lab template links Font Awesome from a CDN; the ``ot``
template here is the same page without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ot_core.resources import explore_notebooks_dir

HOOK = "ot_core.workbench.lab.scrub_outputs"
VOILA_TEMPLATE = "ot"
CELL_METADATA = ("tags",)  # kept on save; run-time noise (execution times, scroll) is not
NOTEBOOK_METADATA = ("kernelspec",)


def shipped_names() -> set[str]:
    return {p.name for p in explore_notebooks_dir().glob("*.ipynb")}


def scrub_outputs(model: dict[str, Any], path: str, contents_manager: Any = None,
                  **_kw: Any) -> None:
    """Jupyter server pre-save hook: an analyst notebook (one of the shipped names) is
    written without outputs, execution counts, widget state or run-time metadata, so it
    stays as committed and reopens clean. Other notebooks are saved as they are."""
    if model.get("type") != "notebook" or Path(path).name not in shipped_names():
        return
    nb = model["content"]
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items()
                            if k in CELL_METADATA}
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in NOTEBOOK_METADATA}


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_argv(port: int | None = None) -> list[str]:
    """JupyterLab's options: the pre-save hook, loopback only, and --allow-root only when
    this process is root (JupyterLab refuses root without it)."""
    argv = [f"--ContentsManager.pre_save_hook={HOOK}", "--ServerApp.ip=127.0.0.1"]
    if port:
        argv.append(f"--ServerApp.port={port}")
    if running_as_root():
        argv.append("--ServerApp.allow_root=True")
    return argv


def template_root() -> Path:
    """The folder holding ``voila/templates/ot`` (added to JUPYTER_PATH for Voilà)."""
    return Path(__file__).resolve().parent / "share"


def voila_env(env: dict[str, str] | None = None) -> dict[str, str]:
    base = dict(os.environ if env is None else env)
    paths = [str(template_root())] + ([base["JUPYTER_PATH"]] if base.get("JUPYTER_PATH") else [])
    base["JUPYTER_PATH"] = os.pathsep.join(paths)
    return base


def voila_argv(notebook: Path | str, port: int | None = None) -> list[str]:
    """Voilà's options for one view: the offline template, loopback only."""
    argv = [str(notebook), f"--template={VOILA_TEMPLATE}", "--no-browser", "--Voila.ip=127.0.0.1"]
    if port:
        argv.append(f"--port={port}")
    return argv

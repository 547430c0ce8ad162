"""Files the library ships inside the package, and the one stable place for its data.

The SQL templates, the default pipeline config, the job catalogue and the notebooks are
package data (found with ``importlib.resources``), so a wheel installed anywhere works the
same as a checkout. The SQL (``sql/``) and the notebooks (``notebooks/jobs``,
``notebooks/explore``) are kept once, at the top of the repository, where an analyst reads
them; the wheel maps them into the package at build time (``ot_core/sql``,
``ot_core/notebooks``), and :func:`shipped` finds them in either place. A user's own files still win: ``--config``/``OT_CONFIG``, ``OT_JOBS``
and ``OT_NOTEBOOKS_DIR``.

The embedded files (``source.sqlite``, ``warehouse.duckdb``) and the executed job notebooks
live in one per-user data folder whatever the working directory, so ``ot demo`` run in one
folder and a notebook kernel started in another see the same warehouse. ``OT_DATA_DIR``
moves it; ``OT_RUNS_DIR`` moves the executed notebooks alone.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

APP_NAME = "ot-workbench"


def package_path(*parts: str) -> Path:
    """A shipped file or folder as a filesystem path (the package is never zipped)."""
    return Path(str(resources.files("ot_core").joinpath(*parts)))


def shipped(*parts: str) -> Path:
    """A file or folder kept at the top of the repository and shipped inside the wheel
    (``sql``, ``notebooks/...``): the wheel's copy when installed, else the checkout's."""
    inside = package_path(*parts)
    if inside.exists():
        return inside
    return Path(__file__).resolve().parent.parent.joinpath(*parts)


def default_config_path() -> Path:
    return package_path("defaults", "pipeline.yml")


def default_catalogue_path() -> Path:
    return package_path("defaults", "jobs.yml")


def job_notebooks_dir() -> Path:
    """Where job notebooks are found: ``OT_NOTEBOOKS_DIR``, else the shipped ones."""
    mine = os.environ.get("OT_NOTEBOOKS_DIR")
    return Path(mine).expanduser().resolve() if mine else shipped("notebooks", "jobs")


def explore_notebooks_dir() -> Path:
    """The analyst notebooks as shipped (``ot notebooks`` copies them where a user wants)."""
    return shipped("notebooks", "explore")


def data_dir() -> Path:
    """``OT_DATA_DIR``, else the per-user data folder (e.g. ~/.local/share/ot-workbench)."""
    mine = os.environ.get("OT_DATA_DIR")
    if mine:
        return Path(mine).expanduser().resolve()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def runs_dir() -> Path:
    """Executed job notebooks: ``OT_RUNS_DIR``, else ``runs/`` in the data folder."""
    mine = os.environ.get("OT_RUNS_DIR")
    return Path(mine).expanduser().resolve() if mine else data_dir() / "runs"

"""``ot notebooks``: put a copy of the analyst notebooks where the user wants them.

The notebooks ship inside the package (``resources.explore_notebooks_dir``), where a wheel
user should not edit them: the copy is theirs to run and change. A copy that differs from
the shipped notebook (the user's edits, outputs of a run, or an older release) is never
replaced silently: it is kept and reported, or with ``overwrite`` replaced after it is saved
under a dated name beside it.
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ot_core.errors import ExtraMissing, UsageError
from ot_core.resources import explore_notebooks_dir
from ot_core.timeutil import utcnow
from ot_core.workbench.lab import lab_argv

DEFAULT_DEST = "ot-notebooks"
LAB_EXTRA = "pip install 'ot-workbench[lab]'"


@dataclass
class CopyResult:
    dest: Path
    copied: list[str] = field(default_factory=list)  # new in DEST
    current: list[str] = field(default_factory=list)  # already the shipped version
    kept: list[str] = field(default_factory=list)  # differ from the shipped one: left as they are
    replaced: dict[str, str] = field(default_factory=dict)  # name -> where the old copy went
    lab_ready: bool = True  # JupyterLab and ipywidgets are installed

    def summary(self) -> str:
        lines = [f"analyst notebooks in {self.dest}:"]
        lines += [f"  copied    {n}" for n in self.copied]
        lines += [f"  current   {n}" for n in self.current]
        lines += [f"  replaced  {n} (your copy saved as {old})" for n, old in self.replaced.items()]
        lines += [f"  kept      {n}: differs from the shipped version (your edits or outputs); "
                  "--overwrite replaces it and saves yours beside it" for n in self.kept]
        if not self.lab_ready:
            lines.append(f"to open them: {LAB_EXTRA} (JupyterLab and ipywidgets)")
        else:
            lines.append(f"open them: ot notebooks {self.dest} --lab")
        return "\n".join(lines)


def lab_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("jupyterlab", "ipywidgets"))


def copy_notebooks(dest: str | Path = DEFAULT_DEST, *, overwrite: bool = False) -> CopyResult:
    """Copy every shipped analyst notebook into ``dest`` (created if missing)."""
    target = Path(dest).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is a file: name a folder for the notebooks")
    shipped = sorted(explore_notebooks_dir().glob("*.ipynb"))
    if not shipped:  # a broken install, not a user mistake
        raise UsageError(f"no notebooks found in {explore_notebooks_dir()}: reinstall ot-workbench")
    target.mkdir(parents=True, exist_ok=True)
    res = CopyResult(target, lab_ready=lab_installed())
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    for src in shipped:
        mine = target / src.name
        if not mine.exists():
            shutil.copyfile(src, mine)
            res.copied.append(src.name)
        elif filecmp.cmp(src, mine, shallow=False):
            res.current.append(src.name)
        elif overwrite:
            old = mine.with_name(f"{mine.stem}.{stamp}{mine.suffix}")
            mine.replace(old)
            shutil.copyfile(src, mine)
            res.replaced[src.name] = old.name
        else:
            res.kept.append(src.name)
    return res


def open_lab(dest: str | Path, port: int | None = None) -> None:
    """Replace this process with JupyterLab serving ``dest`` on 127.0.0.1, outputs never
    saved into the analyst notebooks (``lab.lab_argv``; as root it passes --allow-root).
    Its own options and config apply too: ``jupyter lab --generate-config``."""
    if not lab_installed():
        raise ExtraMissing(f"JupyterLab and ipywidgets are not installed: {LAB_EXTRA}")
    folder = Path(dest).expanduser().resolve()
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(folder)
    os.execv(sys.executable, [sys.executable, "-m", "jupyterlab", *lab_argv(port)])


def open_voila(dest: str | Path, name: str, port: int | None = None) -> None:
    """Serve one view of ``dest`` as `ot serve` does: a login token required, loopback only,
    no code, no other notebook reachable, nothing loaded from the network."""
    from ot_core.workbench.serve import serve

    stem = name.removesuffix(".ipynb")
    notebook = Path(dest).expanduser().resolve() / f"{stem}.ipynb"
    if not notebook.is_file():
        names = ", ".join(sorted(p.stem for p in explore_notebooks_dir().glob("*.ipynb")))
        raise UsageError(f"no notebook {notebook}: name one of {names}")
    serve(str(notebook), port=port or 8866)

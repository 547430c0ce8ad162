"""The analyst and monthly notebooks stay thin and are committed clean.

(Executing them top to bottom is the notebook suite's job; this checks their shape.)"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks" / "explore").glob("*.ipynb")) + [
    ROOT / "notebooks" / "jobs" / "monthly_compare.ipynb"]
LOGIC = re.compile(r"^\s*(def |class |for |while |if |try:|with )", re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin_and_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "config_path" in params[0].source
    for c in code:
        assert not LOGIC.search(c.source), c.source
        assert "://" not in c.source  # connections come from the environment only
    assert len(nb.cells) <= 12


def test_monthly_compare_parameters():
    import papermill

    params = papermill.inspect_notebook(str(ROOT / "notebooks/jobs/monthly_compare.ipynb"))
    assert set(params) == {"month", "tables", "config_path"}

"""The package's shape: modules grouped by role, no import circle between them, modules of
a readable size, and one --json behaviour on every listing command."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ot_core.cli import main
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate

PACKAGE = Path(__file__).resolve().parent.parent / "ot_core"


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_at_load(path: Path) -> set[str]:
    """ot_core modules imported when ``path`` is loaded (not inside functions or
    TYPE_CHECKING blocks, which run later or never)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []:
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("ot_core"):
                out.add(sub.module)
                out.update(f"{sub.module}.{a.name}" for a in sub.names)
            elif isinstance(sub, ast.Import):
                out.update(a.name for a in sub.names if a.name.startswith("ot_core"))
    return out


def test_no_import_circle():
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = {d for d in _imports_at_load(path) if d in modules and d != name}
        # importing a module first imports every package above it
        parts = name.split(".")
        deps |= {".".join(parts[:i]) for i in range(1, len(parts))} - {name}
        graph[name] = deps
    seen: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if seen.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError("import circle: " + " → ".join(cycle))
            if dep not in seen:
                visit(dep)
        path.pop()
        seen[node] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name)


def test_modules_are_grouped_by_role_and_of_readable_size():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(flat) <= 14, flat  # the rest lives in pipeline/, quality/, workbench/, ...
    for sub in ("engines", "db", "pipeline", "quality", "workbench", "jobs"):
        assert (PACKAGE / sub / "__init__.py").exists(), sub
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 560}
    assert not long, long


@pytest.fixture
def seeded(embedded):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3,
             source=embedded.source_url)
    run_cycle("2026-03-01T12:00:00Z", source=embedded.source_url,
              warehouse=embedded.warehouse_url)
    return embedded


@pytest.mark.parametrize("args, kind", [
    (["runs", "--json"], list),
    (["exceptions", "list", "--json"], list),
    (["exceptions", "list", "--all", "--json"], list),
    (["jobs", "--json"], list),
    (["compare", "--table", "ecs", "--json"], dict),
    (["cycle", "--as-of", "2026-03-01T12:15:00Z", "--json"], dict),
])
def test_every_listing_prints_one_json_document(seeded, args, kind):
    res = CliRunner().invoke(main, args, env=seeded.env())
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert isinstance(doc, kind)
    if kind is list and doc:
        assert all(isinstance(row, dict) for row in doc)

"""The package's shape: modules grouped by role in layers that import only downwards (the
engines a leaf), no import circle even through deferred or importlib imports, no engine-name
comparison outside the engines, modules of a readable size, and one --json behaviour on
every listing command."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ot_core.cli import main

PACKAGE = Path(__file__).resolve().parent.parent / "ot_core"

# Layers, lowest first (docs/contracts.md#package-layers): a module may import its own
# layer and the ones below it, never one above, at load time or later.
LAYERS = ("base", "engines", "db", "pipeline", "quality", "jobs", "workbench", "face")
FACE = {"cli", "console", "demo", "simulate", "__main__"}
MAX_LINES = 450


def _module(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, package: str, *, typing_too: bool) -> set[str]:
    """Every ``package`` module ``path`` imports: at load time, inside functions (deferred),
    through ``importlib.import_module`` with a literal or f-string prefix, and (with
    ``typing_too``) in TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    if not typing_too:
        for node in ast.walk(tree):
            if _is_type_checking(node):
                skip.update(id(n) for n in ast.walk(node))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == package:
            if node.module != package:  # ``from ot_core import errors`` names the module only
                out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.Call) and node.args and (
                getattr(node.func, "attr", None) == "import_module"
                or getattr(node.func, "id", None) == "import_module"):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values and \
                    isinstance(arg.values[0], ast.Constant):
                out.add(str(arg.values[0].value).rstrip(".") + ".*")
    return {m for m in out if m.split(".")[0] == package}


def _graph(root: Path, *, typing_too: bool) -> dict[str, set[str]]:
    modules = {_module(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for d in imports_of(path, root.name, typing_too=typing_too):
            if d.endswith(".*"):  # importlib with a computed name: any module under the prefix
                deps |= {m for m in modules if m.startswith(d[:-1])}
            elif d in modules:
                deps.add(d)
        graph[name] = deps - {name}
    return graph


def find_circle(root: Path) -> list[str] | None:
    """An import circle among the modules under ``root``, counting deferred and importlib
    imports (a circle that only closes at run time still breaks a fresh process)."""
    graph = _graph(root, typing_too=False)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return LAYERS.index("base")
    if parts[1] in FACE:
        return LAYERS.index("face")
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else LAYERS.index("base")


def upward_imports(root: Path) -> list[str]:
    graph = _graph(root, typing_too=True)
    return sorted(f"{m} ({LAYERS[layer(m)]}) imports {d} ({LAYERS[layer(d)]})"
                  for m, deps in graph.items() for d in deps if layer(d) > layer(m))


def test_no_import_circle():
    assert find_circle(PACKAGE) is None, "import circle: " + " → ".join(find_circle(PACKAGE) or [])


def test_layers_import_only_downwards():
    assert upward_imports(PACKAGE) == []


def test_engines_are_a_leaf():
    graph = _graph(PACKAGE, typing_too=True)
    outside = {f"{m} imports {d}" for m, deps in graph.items() if m.startswith("ot_core.engines")
               for d in deps if layer(d) > LAYERS.index("engines")}
    assert not outside, outside


@pytest.mark.parametrize("how", ["deferred", "importlib", "importlib-fstring"])
def test_the_checks_see_circles_and_upward_imports_that_close_at_run_time(tmp_path, how):
    pkg = tmp_path / "ot_core"
    (pkg / "engines").mkdir(parents=True)
    (pkg / "db").mkdir()
    for p in (pkg, pkg / "engines", pkg / "db"):
        (p / "__init__.py").write_text("")
    call = {"deferred": "    from ot_core.db import connect\n",
            "importlib": "    import importlib\n    importlib.import_module('ot_core.db.connect')\n",
            "importlib-fstring": "    import importlib\n    name = 'connect'\n"
                                 "    importlib.import_module(f'ot_core.db.{name}')\n"}[how]
    (pkg / "engines" / "duckdb.py").write_text(f"def later():\n{call}")
    (pkg / "db" / "connect.py").write_text("from ot_core.engines import duckdb\n")
    assert find_circle(pkg) is not None
    assert "ot_core.engines.duckdb (engines) imports ot_core.db.connect (db)" in \
        upward_imports(pkg)


def test_no_engine_name_is_compared_outside_the_engines():
    """Engine differences are asked of the backend entry (its capabilities), never spelled
    as a comparison with a dialect name elsewhere."""
    names = ("duckdb", "sqlite", "mysql", "mariadb", "postgresql", "redshift")
    found = []
    for path in PACKAGE.rglob("*.py"):
        if "engines" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                if any(isinstance(c, str) and c.lower() in names for c in consts):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, found


def test_modules_are_grouped_by_role_and_of_readable_size():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(flat) <= 16, flat  # the rest lives in pipeline/, quality/, workbench/, ...
    for sub in ("engines", "db", "pipeline", "quality", "workbench", "jobs"):
        assert (PACKAGE / sub / "__init__.py").exists(), sub
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


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


def test_every_package_is_built_into_the_wheel():
    """The wheel lists its packages (the SQL and notebooks are mapped in from the top of the
    repository), so a new subpackage must be listed too."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {_module(p, PACKAGE) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)

"""The design lives in docs/ and nowhere else: nothing in the repository points at a document
outside it, and every link into docs/ lands on a heading that exists.

Why: a reader (or an error message) that cites a page the repository does not hold, or a
heading that was renamed, leaves the operator with nothing to follow.
"""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}

# Assembled from pieces so this file does not match itself.
OUTSIDE = re.compile("|".join([
    "DESIGN" + r"\.md",           # the design document the project was built from
    r"\.\." + "/shared",          # the folder beside the repository it lived in
    "reviewed" + r"\s+defects?",  # numbered defects of a review the repository does not hold
]), re.IGNORECASE)
# docs/<page>.md or docs/<page>.md#<anchor> anywhere in the repository (code, SQL, README,
# notebooks)
DOC_LINK = re.compile(r"\bdocs/([A-Za-z0-9_.-]+\.md)(?:#([A-Za-z0-9_-]+))?")
# a Markdown link target inside a docs page: page.md, page.md#anchor or #anchor
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@lru_cache(maxsize=1)
def repo_files() -> tuple[Path, ...]:
    """Tracked files (plus new, unignored ones), or every file outside SKIP_DIRS."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True).stdout.decode()
        files = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*") if p.is_file()]
    return tuple(p for p in files if p.is_file()
                 and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts))


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary or unreadable: holds no link


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (``-`` and ``_`` kept),
    each space a ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page (code blocks skipped; repeats get -1, -2...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if not m:
            continue
        base = anchor(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_anchor_follows_github():
    assert anchor("1. Tie-break missing in the latest-state ranking") == \
        "1-tie-break-missing-in-the-latest-state-ranking"
    assert anchor("`ecs_order_info`") == "ecs_order_info"
    assert anchor("Why a killed cycle rerun ends where one clean run would") == \
        "why-a-killed-cycle-rerun-ends-where-one-clean-run-would"


def test_docs_pages_exist():
    for page in ("README.md", "contracts.md", "cycle.md", "lifecycle.md", "compare.md",
                 "errors.md", "legacy-defects.md", "commands.md"):
        assert (DOCS / page).is_file(), f"docs/{page} is missing"


def test_nothing_points_outside_the_repository():
    assert OUTSIDE.search("see " + "DESIGN" + ".md section 7")  # the pattern itself matches
    hits = []
    for path in repo_files():
        text = read_text(path)
        if text is None:
            continue
        for no, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
        # a phrase broken across two lines of a comment
        for m in OUTSIDE.finditer(text):
            if "\n" in m.group(0):
                hits.append(f"{path.relative_to(ROOT)}: {m.group(0)!r}")
    assert hits == [], "link docs/<page>.md#<heading> instead:\n" + "\n".join(hits)


def test_every_docs_link_in_the_repository_lands_on_a_heading():
    """A page named anywhere exists, and a heading named with it exists on that page."""
    links = []
    for path in repo_files():
        text = read_text(path)
        if text is not None:
            links += [(path, m.group(1), m.group(2)) for m in DOC_LINK.finditer(text)]
    assert any(frag for _, _, frag in links), "no docs link found: pattern or walk broken"
    broken = [f"{p.relative_to(ROOT)}: docs/{page}#{frag or ''}" for p, page, frag in links
              if not (DOCS / page).is_file() or (frag and frag not in anchors(DOCS / page))]
    assert broken == [], "no such page or heading:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_links_inside_docs_resolve(page):
    """Relative links between docs pages land on a heading; every other relative link names
    a file inside the repository."""
    src = DOCS / page
    broken = []
    for target in MD_LINK.findall(src.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL
        file_part, _, frag = target.partition("#")
        dest = (src.parent / file_part).resolve() if file_part else src
        if ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not dest.exists():
            broken.append(f"{target}: no such file")
        elif frag and frag not in anchors(dest):
            broken.append(f"{target}: no such heading")
    assert broken == [], f"docs/{page}:\n" + "\n".join(broken)


def test_exit_codes_page_matches_the_command_line():
    """docs/errors.md lists exactly the codes ``ot`` exits with (besides click's own 0/2)."""
    from ot_core import cli

    codes = {v for k, v in vars(cli).items() if k.startswith("EXIT_")}
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    table = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\|\s*(\d+)\s*\|", table, re.MULTILINE)}
    assert codes, "ot_core.cli defines no EXIT_* codes"
    assert documented == codes | {0}


def test_readme_is_set_up_a_tour_and_links():
    """The README keeps the two set-up commands CI runs and points at the design instead of
    repeating it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = re.search(r"pip install -e '(\.\[[a-z,]+\])' && \.venv/bin/ot demo", readme)
    assert install, "the README's install command is missing"
    assert f"pip install --quiet -e '{install.group(1)}'" in ci, "CI installs other extras"
    assert "\n.venv/bin/python -m pytest\n" in readme
    ci_tests = re.search(r"^\.venv/bin/python -m pytest (-m '[^']+')(?: --durations=\d+)?$",
                         ci, re.M)
    assert ci_tests and f".venv/bin/python -m pytest {ci_tests.group(1)}" in readme
    for page in ("README.md", "commands.md", "cycle.md", "lifecycle.md", "compare.md"):
        assert f"(docs/{page}" in readme, f"the README does not link docs/{page}"
    assert len(readme.splitlines()) < 260, "the README grows into a second copy of docs/"

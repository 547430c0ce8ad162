"""Every ``ot`` command and subcommand explains itself, and docs/commands.md (linked from the
README) is exactly what ``ot docs commands`` prints from those help pages.

The command tree is walked from click itself, so commands added later are covered without
editing this file.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ot_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def walk(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            out += walk(sub, path + (name,))
    return out


COMMANDS = walk(main)


def test_the_tree_is_walked():
    assert {("cycle",), ("simulate",), ("run",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(("ot",) + p))
def test_help_exits_0_and_says_something(path):
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Usage: ")
    cmd = main
    for name in path:
        cmd = cmd.commands[name]
    text = (cmd.help or "").strip()
    assert len(text) >= 20, f"ot {' '.join(path)} has no real help text"
    assert text.split()[0] in res.output  # the docstring reaches the help page


def test_the_command_reference_is_current():
    page = (ROOT / "docs" / "commands.md").read_text()
    res = CliRunner().invoke(main, ["docs", "commands"])
    assert res.exit_code == 0, res.output
    assert res.output == page, "docs/commands.md is stale: ot docs commands > docs/commands.md"


def test_the_command_reference_has_a_section_per_command():
    from ot_core.reference import command_reference

    page = command_reference(main)
    for path in COMMANDS:
        name = " ".join(("ot", *path))
        assert f"\n## {name}\n" in page and f"[`{name}`](#{name.replace(' ', '-')})" in page
    assert "Usage: ot run [OPTIONS] JOB" in page  # the help page itself, not a summary


def test_the_readme_links_the_command_reference():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/commands.md)" in readme


def test_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(main, ["no-such-command"])
    assert res.exit_code == 2 and res.stderr.startswith("ot: error: No such command")


@pytest.mark.parametrize("args", [["run", "nosuchjob"], ["run", "cycle", "-p", "bogus", "1"],
                                  ["cycle", "--bogus"], ["compare", "--table", "nope"]])
def test_usage_errors_are_one_line_and_exit_2(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("ot: error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Usage:" not in res.output

"""Render the step SQL in ``sql/`` for one backend.

Templates are written once in the subset DuckDB, PostgreSQL and Redshift all accept
(docs/contracts.md#sql-dialect-policy). Jinja fills in identifiers only — each one
validated by the config and quoted by the backend's own dialect; every value stays a
``:name`` bound parameter.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import jinja2

from ot_core.engines import Backend
from ot_core.resources import APP_NAME, shipped

SQL_DIR = shipped("sql")
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept in the per-user cache folder (a cycle would otherwise parse
    a dozen templates in every process); none where that folder cannot be written."""
    import os
    import tempfile

    from platformdirs import user_cache_dir

    try:
        folder = os.path.join(user_cache_dir(APP_NAME, appauthor=False), "sql-templates")
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(folder)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SQL_DIR)),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )



class Renderer:
    """Binds a backend's quoting to the templates' helper functions."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def q(self, ident: str) -> str:
        if not _SAFE_NAME.match(ident):
            raise ValueError(f"refusing to render identifier {ident!r}")
        return self.backend.quote(ident)

    def cols(self, names: list[str] | tuple[str, ...], prefix: str = "") -> str:
        p = f"{prefix}." if prefix else ""
        return ", ".join(p + self.q(n) for n in names)

    def render(self, template: str, **context: Any) -> str:
        tpl = _env().get_template(template)
        text = tpl.render(q=self.q, cols=self.cols, **context)
        # drop comment-only lines so the statement logged is the statement run
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        return "\n".join(lines)


def parse_check(statement: str, dialect: str = "redshift") -> Any:
    """Parse a rendered statement with sqlglot; raises on a syntax the dialect rejects."""
    import sqlglot

    return sqlglot.parse_one(statement, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)

"""Executed job records (the notebooks under OT_RUNS_DIR) shown from the health view.

The runs folder lies outside the notebook server's root (and Voilà serves no files at all),
so a record is never linked by path: its HTML (the ``.html`` twin written beside the
``.ipynb`` when there is one, else the notebook rendered by nbconvert now) is shown inline
in a sandboxed frame and offered as a browser download. Nothing is fetched from the
network: scripts and remote stylesheets are dropped from the HTML.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ot_core.resources import runs_dir
from ot_core.workbench.present import Html, Message

# scripts (the frame runs none: they would only fetch require.js, MathJax, mermaid from a
# CDN) and stylesheets linked from another host
SCRIPTS = re.compile(r"<script\b.*?</script\s*>", re.I | re.S)
REMOTE = re.compile(r"<link\b[^>]*\bhref\s*=\s*['\"]?(?:https?:)?//[^>]*>", re.I)


def record_path(notebook_path: str | None) -> Path | None:
    """The record's file: as recorded, or relative to the runs folder."""
    if not notebook_path:
        return None
    p = Path(notebook_path)
    return p if p.is_absolute() else runs_dir() / p


def render(path: Path) -> str:
    """The record's HTML: its twin when written, else the notebook rendered now; with no
    remote scripts or stylesheets (the page must not reach the network)."""
    twin = path.with_suffix(".html")
    if twin.is_file():
        text = twin.read_text(encoding="utf-8")
    else:
        import nbformat
        from nbconvert import HTMLExporter

        nb = nbformat.read(path, as_version=4)
        text, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return REMOTE.sub("", SCRIPTS.sub("", text))


def record_view(notebook_path: str | None, title: str) -> Html | Message:
    """The record inline (a sandboxed frame, no script runs) with a download link."""
    path = record_path(notebook_path)
    if path is None:
        return Message(f"{title} has no executed record (skipped runs write none).")
    if not path.is_file() and not path.with_suffix(".html").is_file():
        return Message(f"The record of {title} is missing: {path.name} is no longer in the "
                       "runs folder.", "warning")
    page = render(path)
    data = base64.b64encode(page.encode("utf-8")).decode("ascii")
    name = path.with_suffix(".html").name
    markup = (f"<div><b>{html.escape(title)}</b> · <a class='ot-record-download' "
              f"download='{html.escape(name, quote=True)}' "
              f"href='data:text/html;charset=utf-8;base64,{data}'>download {html.escape(name)}</a>"
              f"</div><iframe class='ot-record' sandbox='' title='{html.escape(title, quote=True)}'"
              f" style='width:100%;height:640px;border:1px solid #ccc' "
              f"srcdoc='{html.escape(page, quote=True)}'></iframe>")
    return Html(markup, f"{title}: {name}")

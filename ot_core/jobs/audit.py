"""The audit record of a job run: written once, read-only, signed, hashed into a chain.

An executed job notebook is the evidence of what a run did, so it must not change after
the run: it is created exclusively (never overwritten), signed with nbformat's notary (so
JupyterLab trusts it and renders its SVG and HTML outputs instead of their text stand-ins)
and made read-only on disk (JupyterLab then neither marks it changed nor autosaves it). An
HTML twin is rendered beside it at the same moment, so nobody needs a kernel to read it.

Each sealed run's row in ``ot_job_runs`` keeps the SHA-256 of both files, the order it was
sealed in (``seal_seq``) and the previous sealed record's notebook SHA-256
(``prev_sha256``): a changed file no longer matches its hash, a deleted file is missing, and
a deleted or re-ordered row breaks the chain at the row after it. :func:`verify` re-hashes
and walks the chain (``ot runs verify``). See docs/audit.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ot_core.config import PipelineConfig, load_config
from ot_core.db.connect import Database, open_database
from ot_core.db.schema import JOB_RUNS_TABLE
from ot_core.jobs.records import job_runs_table
from ot_core.secrets import redact

log = logging.getLogger("ot.jobs")
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
ERROR_DETAIL_TAG = "ot-error-detail"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# The lab template without its scripts from the network (require.js, MathJax, mermaid, the
# widget manager): the HTML copy must read the same offline, years later.
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block data_svg scoped -%}
<div class="jp-RenderedSVG jp-OutputArea-output {{ extra_class }}" data-mime-type="image/svg+xml">
<img alt="{{ ((output | get_metadata('alt', 'image/svg+xml')) or 'chart') | escape_html }}"
 src="data:image/svg+xml;base64,{{ output.data['image/svg+xml'] | text_base64 | escape_html }}">
</div>
{%- endblock data_svg %}
"""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_html(nb: Any) -> str:
    """A self-contained HTML page of ``nb``: images embedded, no remote script."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True,
                            extra_loaders=[DictLoader({"ot_offline.html.j2": _OFFLINE_TEMPLATE})])
    exporter.template_file = "ot_offline.html.j2"
    body, _ = exporter.from_notebook_node(nb)
    return redact(body)


def fold_errors(nb: Any) -> None:
    """A failed cell ends with its one-line error; the traceback (what ``ot -v`` would
    print) follows folded in a ``<details>`` block, not as a wall of text. The error output
    stays an error output (tools still find it), with the one line as its traceback."""
    from nbformat.v4 import new_output

    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        for i, out in enumerate(list(outputs)):
            if out.get("output_type") != "error":
                continue
            line = f"{out.get('ename')}: {out.get('evalue')}"
            detail = _ANSI.sub("", "\n".join(out.get("traceback") or [])).strip()
            out["traceback"] = [line]
            if not detail or detail == line:
                continue
            html = (f"<details><summary>detail (the traceback, as <code>ot -v</code> shows it)"
                    f"</summary><pre>{escape(redact(detail))}</pre></details>")
            outputs.insert(i + 1, new_output(
                "display_data", data={"text/html": html, "text/plain": "(traceback folded)"},
                metadata={"tags": [ERROR_DETAIL_TAG]}))


@dataclass(frozen=True)
class Sealed:
    notebook: Path
    html: Path
    notebook_sha256: str
    html_sha256: str


def _write_once(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` (never replacing a file) and make it read-only."""
    with path.open("x", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, READ_ONLY)


def seal(nb: Any, path: Path) -> Sealed:
    """Write ``nb`` (scrubbed of secrets) to ``path`` once, signed and read-only, with its
    HTML twin beside it; return both files' SHA-256."""
    import nbformat
    from nbformat.sign import NotebookNotary

    fold_errors(nb)
    node = nbformat.reads(redact(nbformat.writes(nb)), as_version=4)
    page = to_html(node)
    detach_kernel(node)
    try:  # trusted where the same Jupyter data folder is used
        NotebookNotary().sign(node)
    except Exception as exc:  # noqa: BLE001 - no writable data folder: kept, hashed, unsigned
        log.warning("record %s not signed (JupyterLab will show it untrusted; its HTML twin "
                    "shows everything): %s", path.name, redact(str(exc).splitlines()[0]))
    _write_once(path, nbformat.writes(node))
    html = path.with_suffix(".html")
    _write_once(html, page)
    return Sealed(path, html, sha256_file(path), sha256_file(html))


def detach_kernel(node: Any) -> None:
    """Keep the kernel the run used under ``metadata.ot_record``, not where JupyterLab looks
    for one to start: a record opened in JupyterLab then gets no kernel (it asks; "No
    Kernel" views it), so Run All cannot run a real job from it, and no kernel's
    start-up rewrites the metadata, marks the record modified and has autosave save it."""
    moved = {k: node.metadata.pop(k) for k in ("kernelspec", "language_info") if k in node.metadata}
    node.metadata["ot_record"] = {
        "note": "the audit record of a job run: read-only, checked by `ot runs verify`",
        **moved}
    # what JupyterLab writes for "No Kernel": choosing it then changes nothing
    node.metadata["kernelspec"] = {"display_name": "", "name": ""}
    node.metadata["language_info"] = {"name": ""}


# -- verification ------------------------------------------------------------------------------

@dataclass
class Finding:
    run_id: int
    kind: str  # changed, missing, reordered, deleted-before, unsealed
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.kind, "detail": self.detail}


@dataclass
class Verification:
    checked: int
    findings: list[Finding] = field(default_factory=list)
    run_id: int | None = None

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.kind != "unsealed"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        scope = f"run {self.run_id}" if self.run_id is not None else f"{self.checked} sealed records"
        lines = [f"run {f.run_id}: {f.kind.upper()}: {f.detail}" for f in self.findings]
        verdict = "OK: every checksum and chain link matches" if self.ok else \
            f"FAILED: {len(self.problems)} problem(s) found"
        return "\n".join([*lines, f"{scope} verified: {verdict}"])

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "checked": self.checked, "ok": self.ok,
                "findings": [f.as_dict() for f in self.findings]}


def _check_files(row: Any) -> list[Finding]:
    out = []
    nb = Path(row.notebook_path)
    for path, want, what in ((nb, row.notebook_sha256, "notebook"),
                             (nb.with_suffix(".html"), row.html_sha256, "HTML twin")):
        if want is None:
            continue
        if not path.exists():
            out.append(Finding(int(row.run_id), "missing", f"{what} {path} is gone"))
        elif (got := sha256_file(path)) != want:
            out.append(Finding(int(row.run_id), "changed",
                               f"{what} {path} has SHA-256 {got[:16]}…, recorded {want[:16]}…"))
    return out


def _check_chain(rows: list[Any]) -> list[Finding]:
    """Walk sealed rows in seal order: each must name its predecessor's notebook hash."""
    out = []
    by_hash = {r.notebook_sha256: r for r in rows}
    prev = None
    for r in rows:
        expected_seq = 1 if prev is None else int(prev.seal_seq) + 1
        want: str | None = None if prev is None else prev.notebook_sha256
        if r.prev_sha256 == want and int(r.seal_seq) == expected_seq:
            prev = r
            continue
        if r.prev_sha256 in by_hash and r.prev_sha256 is not None:
            other = by_hash[r.prev_sha256]
            out.append(Finding(int(r.run_id), "reordered",
                               f"sealed right after run {other.run_id}, but now at seal "
                               f"{r.seal_seq}, following "
                               + (f"run {prev.run_id}" if prev is not None else "nothing")))
        elif prev is None and r.prev_sha256 is None:
            out.append(Finding(int(r.run_id), "reordered",
                               f"the chain's first record, but at seal {r.seal_seq}"))
        else:
            gap = int(r.seal_seq) - expected_seq
            out.append(Finding(int(r.run_id), "deleted-before",
                               f"the record sealed before it (seal {int(r.seal_seq) - 1}) is not in "
                               f"ot_job_runs any more ({max(gap, 1)} row(s) deleted or altered)"))
        prev = r
    return out


def verify(run_id: int | None = None, *, config: PipelineConfig | str | None = None,
           warehouse: Database | str | None = None) -> Verification:
    """Re-hash every sealed record (or ``run_id``'s) and check the chain of rows."""
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    db = warehouse if isinstance(warehouse, Database) else open_database("warehouse", warehouse)
    t = job_runs_table(cfg, db.backend)
    try:
        with db.engine.connect() as conn:
            if JOB_RUNS_TABLE not in db.backend.list_tables(conn, cfg.schemas.control, JOB_RUNS_TABLE):
                rows: list[Any] = []
            else:
                rows = list(conn.execute(sa.select(t).order_by(t.c.seal_seq, t.c.run_id)).fetchall())
    finally:
        if not isinstance(warehouse, Database):
            db.dispose()
    sealed = [r for r in rows if r.seal_seq is not None]
    findings = [Finding(int(r.run_id), "unsealed", "recorded before checksums were kept: not verifiable")
                for r in rows if r.seal_seq is None and r.notebook_path
                and (run_id is None or int(r.run_id) == run_id)]
    if run_id is not None and not any(int(r.run_id) == run_id for r in rows):
        from ot_core.errors import JobError

        raise JobError(f"run {run_id} is not in ot_job_runs: see `ot runs` for the recorded runs")
    for r in sealed:
        if run_id is None or int(r.run_id) == run_id:
            findings += _check_files(r)
    chain = _check_chain(sealed)
    if run_id is not None:
        successor = {int(a.run_id): int(b.run_id) for a, b in zip(sealed, sealed[1:], strict=False)}
        mine = {run_id, successor.get(run_id, -1)}  # a link into this run is its business too
        chain = [f for f in chain if f.run_id in mine]
    findings += chain
    checked = len(sealed) if run_id is None else 1
    return Verification(checked, sorted(findings, key=lambda f: f.run_id), run_id)

"""``ot serve``: one analyst view as a web page (Voilà), never without a login.

A served page shows every partner's orders to whoever reaches it, so it starts only with a
token the operator set (``OT_VIEW_TOKEN``, or the file ``OT_VIEW_TOKEN_FILE`` names): there
is no default and none is generated. The token is taken out of the environment before the
kernels start (they inherit it), registered for redaction, never printed nor put on a
command line (``ps`` would show it). The server listens on localhost unless told otherwise;
serving a team goes through its own login in front (docs/roles.md#serving-the-views).
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

from ot_core.errors import ConfigError, ExtraMissing, UsageError
from ot_core.resources import explore_notebooks_dir
from ot_core.secrets import remember_secret

log = logging.getLogger("ot")
TOKEN_VAR = "OT_VIEW_TOKEN"
MIN_TOKEN = 16
LOCAL = ("127.0.0.1", "localhost", "::1")
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
SERVE_EXTRA = "pip install 'ot-workbench[serve]'"


def view_token(environ: MutableMapping[str, str]) -> str:
    """The operator's token (from ``OT_VIEW_TOKEN`` or ``OT_VIEW_TOKEN_FILE``), removed from
    ``environ``; refuses to go on without one, or with one short enough to guess."""
    text = environ.pop(TOKEN_VAR, "") or ""
    path = environ.pop(f"{TOKEN_VAR}_FILE", "") or ""
    if not text and path:
        try:
            text = Path(path).read_text().strip()
        except OSError as e:
            raise ConfigError(f"{TOKEN_VAR}_FILE cannot be read ({e.strerror})") from None
    if not text:
        raise ConfigError(f"a served view needs a login: set {TOKEN_VAR} (or {TOKEN_VAR}_FILE) "
                          f"to a secret token, e.g. the output of {MAKE_ONE}")
    if len(text) < MIN_TOKEN:
        raise ConfigError(f"{TOKEN_VAR} is shorter than {MIN_TOKEN} characters: anyone could "
                          f"guess it; use e.g. the output of {MAKE_ONE}")
    remember_secret(text)
    return text


def notebook_path(notebook: str) -> Path:
    """A shipped view by name (``partner_dashboard``) or a notebook file."""
    path = Path(notebook)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    shipped = explore_notebooks_dir() / f"{path.stem}.ipynb"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in explore_notebooks_dir().glob("*.ipynb")))
    raise UsageError(f"no notebook {notebook!r}: name a view ({names}) or an .ipynb file")


def serve(notebook: str, *, port: int = 8866, ip: str = "127.0.0.1",
          environ: MutableMapping[str, str] | None = None) -> None:
    """Serve ``notebook`` with Voilà on ``ip:port`` until interrupted, token required."""
    env = os.environ if environ is None else environ
    path = notebook_path(notebook)
    token = view_token(env)
    try:
        from voila.app import Voila
    except ImportError:
        raise ExtraMissing(f"serving a view needs Voilà: {SERVE_EXTRA}") from None
    if ip not in LOCAL:
        log.warning("serving %s on %s: reachable from the network with only a token; put a "
                    "reverse proxy with TLS and the team's login in front "
                    "(docs/roles.md#serving-the-views)", path.name, ip)
    from ot_core.workbench.lab import VOILA_TEMPLATE, voila_env

    # the workbench's template: Voilà's page without the icon font it fetches from a CDN
    os.environ["JUPYTER_PATH"] = voila_env()["JUPYTER_PATH"]
    # the token goes to Voilà as a setting of the app, not on its command line
    Voila.launch_instance(argv=[str(path), "--no-browser", f"--port={port}",
                                f"--template={VOILA_TEMPLATE}", f"--Voila.ip={ip}",
                                "--Voila.port_retries=0"], token=token)

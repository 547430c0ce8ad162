"""Engines from the environment, with secrets kept out of every message.

``OT_SOURCE_URL`` and ``OT_WAREHOUSE_URL`` are SQLAlchemy URLs. Unset, they default to the
embedded SQLite source and DuckDB warehouse in the data folder (``OT_DATA_DIR``, else a
per-user folder: see ``ot_core.resources``).
A password may also come from a file the environment names (``OT_SOURCE_PASSWORD_FILE``,
``OT_WAREHOUSE_PASSWORD_FILE``). URLs are shown only with the password masked, and
``redact`` scrubs any known secret from text that leaves the process (logs, errors,
notebooks, job-run rows).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from ot_core.engines import Backend, backend_for
from ot_core.errors import ConfigError, TransientError
from ot_core.resources import data_dir

log = logging.getLogger("ot")
T = TypeVar("T")

_SECRETS: set[str] = set()


def _url_from_env(role: str) -> URL:
    var = f"OT_{role.upper()}_URL"
    text = os.environ.get(var)
    if not text:
        default = {"source": "sqlite:///{}/source.sqlite", "warehouse": "duckdb:///{}/warehouse.duckdb"}
        text = default[role].format(data_dir())
    try:
        url = make_url(text)
    except Exception:
        raise ConfigError(f"{var} is not a SQLAlchemy URL (e.g. mysql+pymysql://user@host/db)") from None
    pw_file = os.environ.get(f"OT_{role.upper()}_PASSWORD_FILE")
    if pw_file:
        try:
            url = url.set(password=Path(pw_file).read_text().strip())
        except OSError as e:
            raise ConfigError(f"OT_{role.upper()}_PASSWORD_FILE cannot be read ({e.strerror})") from None
    if url.password:
        remember_secret(str(url.password))
    return url


def remember_secret(secret: str) -> None:
    if secret and len(secret) >= 3:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """Remove every known secret and any URL password from ``text``."""
    for s in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(s, "***")
    # user:password@host in any URL-looking text
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


@dataclass
class Database:
    """An engine with its backend entry and a printable (masked) name."""

    role: str
    url: URL
    engine: Engine
    backend: Backend

    @property
    def display(self) -> str:
        return masked(self.url)

    @property
    def dialect(self) -> str:
        return self.backend.name

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(role: str, url: URL | str | None = None) -> Database:
    """Build the engine for ``role`` ('source' or 'warehouse') without connecting yet."""
    if url is None:
        url = _url_from_env(role)
    elif isinstance(url, str):
        url = make_url(url)
        if url.password:
            remember_secret(str(url.password))
    backend = backend_for(url.get_dialect()(), role)  # validates the role before connecting
    kwargs = backend.engine_kwargs()
    if url.get_backend_name() in ("sqlite", "duckdb") and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "duckdb":
        # DuckDB admits one writing process per file: release it as soon as a block ends,
        # so a job runner and a notebook kernel never hold it at the same time.
        kwargs["poolclass"] = NullPool
    engine = sa.create_engine(url, **kwargs)
    return Database(role=role, url=url, engine=engine, backend=backend_for(engine, role))


_TRANSIENT_HINTS = (
    "can't connect", "connection refused", "could not connect", "server has gone away",
    "lost connection", "connection reset", "timeout", "timed out", "could not translate host",
    "the database system is starting up", "terminating connection", "too many connections",
    "could not set lock", "conflicting lock", "database is locked",
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, OSError, sa.exc.DBAPIError)):
        text = str(exc).lower()
        return any(h in text for h in _TRANSIENT_HINTS)
    return False


def with_retries(
    fn: Callable[[], T], *, what: str, retries: int, backoff: float,
    error: type[TransientError] = TransientError, sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn``; on a transient failure retry with exponential backoff, then raise ``error``.

    Terminal failures (bad SQL, a missing column) are raised at once: retrying cannot help.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                raise
            if attempt >= retries:
                reason = redact(str(getattr(exc, "orig", exc)).splitlines()[0])
                raise error(
                    f"{what} failed after {attempt + 1} attempts ({reason}). "
                    "Check that the server is running and OT_SOURCE_URL / OT_WAREHOUSE_URL "
                    "point at it."
                ) from None
            delay = backoff * (2**attempt)
            log.warning("%s: transient failure, retry %d/%d in %.1fs: %s", what, attempt + 1,
                        retries, delay, redact(str(getattr(exc, "orig", exc)).splitlines()[0]))
            sleep(delay)
            attempt += 1

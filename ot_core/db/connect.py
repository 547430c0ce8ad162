"""Engines from the environment, with secrets kept out of every message.

``OT_SOURCE_URL`` and ``OT_WAREHOUSE_URL`` are SQLAlchemy URLs. Unset, they default to the
embedded SQLite source and DuckDB warehouse in the data folder (``OT_DATA_DIR``, else a
per-user folder: see ``ot_core.resources``). The analyst workbench reads the warehouse
through its own URL, ``OT_ANALYST_URL`` (a read-only role: docs/roles.md), else through
``OT_WAREHOUSE_URL`` with a warning. A password may also come from a file the environment
names (``OT_SOURCE_PASSWORD_FILE``, ``OT_WAREHOUSE_PASSWORD_FILE``,
``OT_ANALYST_PASSWORD_FILE``). URLs are shown only with the password masked
(``ot_core.secrets``).

Connecting is where a database first fails, so it is where failures are classified:
transient ones are retried with exponential backoff (tenacity), then reported as
``SourceUnavailable`` / ``WarehouseUnavailable``; the rest become one terminal line that
names the database (masked) and what to check.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ot_core.engines import Backend, backend_class, backend_for
from ot_core.errors import (
    ConfigError,
    ExtraMissing,
    OTError,
    SourceUnavailable,
    TerminalError,
    TransientError,
    WarehouseUnavailable,
    advice,
    first_line,
    is_transient,
)
from ot_core.resources import data_dir
from ot_core.secrets import masked, redact, remember_secret

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger("ot")
T = TypeVar("T")

ANALYST_FALLBACK = ("OT_ANALYST_URL is not set: the workbench reads the warehouse with the "
                    "pipeline's role (OT_WAREHOUSE_URL), which may write; see docs/roles.md")


def url_from_env(role: str) -> URL:
    """The URL of ``role`` ('source', 'warehouse' or 'analyst') from the environment, or the
    embedded default in the data folder; 'analyst' falls back to the warehouse's URL
    (``analyst_url`` says when that matters)."""
    var = f"OT_{role.upper()}_URL"
    text = os.environ.get(var)
    if not text:
        if role == "analyst":
            return url_from_env("warehouse")
        default = {"source": "sqlite:///{}/source.sqlite",
                   "warehouse": "duckdb:///{}/warehouse.duckdb"}
        text = default[role].format(data_dir())
    url = parse_url(text, var)
    pw_file = os.environ.get(f"OT_{role.upper()}_PASSWORD_FILE")
    if pw_file:
        try:
            url = url.set(password=Path(pw_file).read_text().strip())
        except OSError as e:
            raise ConfigError(f"OT_{role.upper()}_PASSWORD_FILE cannot be read ({e.strerror})"
                              ) from None
    if url.password:
        remember_secret(str(url.password))
    return url


def analyst_url() -> tuple[URL, str | None]:
    """The workbench's URL, and a one-line warning when it is the pipeline's: no
    ``OT_ANALYST_URL`` while ``OT_WAREHOUSE_URL`` names a server (an embedded file has no
    roles, and the workbench opens it read-only anyway)."""
    url = url_from_env("analyst")
    if os.environ.get("OT_ANALYST_URL") or not os.environ.get("OT_WAREHOUSE_URL"):
        return url, None
    try:
        embedded = backend_class(url.get_backend_name(), "warehouse").embedded_file
    except ConfigError:
        embedded = False  # whatever opens it names the problem
    return url, None if embedded else ANALYST_FALLBACK


def remember_env_secrets() -> None:
    """Register the passwords of OT_SOURCE_URL / OT_WAREHOUSE_URL / OT_ANALYST_URL (and their
    password files) for redaction, without connecting: a child process (a notebook kernel)
    will use them."""
    for role in ("source", "warehouse", "analyst"):
        try:
            url_from_env(role)
        except ConfigError:
            pass  # a malformed URL is reported by whatever opens it


def parse_url(text: str, what: str = "the URL") -> URL:
    """A SQLAlchemy URL; the text is never echoed (it may hold a password)."""
    head, sep, rest = text.partition("://")
    if sep and rest.split("/", 1)[0].count("@") > 1:
        raise ConfigError(f"{what} has more than one '@' before the host: percent-encode an '@' "
                          "in the password as %40, or put the password in a file "
                          "(OT_SOURCE_PASSWORD_FILE / OT_WAREHOUSE_PASSWORD_FILE / "
                          "OT_ANALYST_PASSWORD_FILE)")
    try:
        url = make_url(text)
    except Exception:  # noqa: BLE001 - any parse failure is the same message
        raise ConfigError(f"{what} is not a SQLAlchemy URL (e.g. mysql+pymysql://user@host/db)"
                          ) from None
    if url.password:
        remember_secret(str(url.password))
    return url


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

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


def _missing_driver(url: URL, backend_cls: type[Backend], e: Exception) -> ConfigError:
    """A driver that is not installed, named with the extra that brings it."""
    if backend_cls.extra is None:
        return ConfigError(f"the driver of {url.drivername!r} cannot be loaded ({first_line(e)})")
    return ExtraMissing(f"a {backend_cls.name} database needs its driver: pip install "
                        f"'ot-workbench[{backend_cls.extra}]' ({first_line(e)})")


def _dialect(url: URL, backend_cls: type[Backend]):
    try:
        return url.get_dialect()
    except (ImportError, sa.exc.NoSuchModuleError) as e:
        raise _missing_driver(url, backend_cls, e) from None


def open_database(role: str, url: URL | str | None = None, *, create: bool = True,
                  read_only: bool = False) -> Database:
    """Build the engine for ``role`` ('source' or 'warehouse') without connecting yet.

    An embedded file (and its folder) is created on first use only where ``create``; without
    it, a file that does not exist is an error naming what to run, not a new empty database
    (what reads a source opens it through ``opened``, which never creates one). With
    ``read_only`` every session is opened the engine's read-only way (``Backend.read_only``).
    """
    if url is None:
        url = url_from_env(role)
    elif isinstance(url, str):
        url = parse_url(url, f"the {role} URL")
    elif url.password:
        remember_secret(str(url.password))
    backend_cls = backend_class(url.get_backend_name(), role)  # the role, before connecting
    extra: dict = {}
    if read_only:
        url, extra = backend_cls.read_only(url)
    engine_url = backend_cls.engine_url(url)
    _dialect(engine_url, backend_cls)  # a missing driver module is named here, with its extra
    kwargs = {**backend_cls.engine_kwargs(), **extra}
    if backend_cls.embedded_file and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            var = f"OT_{role.upper()}_URL"
            raise ConfigError(f"the {role} file {path} does not exist: run `ot simulate` (or "
                              f"`ot demo`) to make one, or point {var} at yours")
    try:
        engine = sa.create_engine(engine_url, **kwargs)  # imports the driver
    except ImportError as e:
        raise _missing_driver(url, backend_cls, e) from None
    return Database(role=role, url=url, engine=engine, backend=backend_for(engine, role))


@contextmanager
def opened(role: str, db: Database | URL | str | None) -> Iterator[Database]:
    """The caller's database when it passed one (left open), else one opened here from the
    URL (or the environment) and disposed of on the way out, on error paths too. A source
    opened here must exist: reading never creates an empty one."""
    if isinstance(db, Database):
        yield db
        return
    mine = open_database(role, db, create=role != "source")
    try:
        yield mine
    finally:
        mine.dispose()


def _log_retry(what: str, retries: int) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info("%s: transient failure, retry %d/%d in %.1fs: %s", what,
                    state.attempt_number, retries, delay, redact(first_line(exc)) if exc else "")
    return before_sleep


def with_retries(
    fn: Callable[[], T], *, what: str, retries: int, backoff: float,
    error: type[TransientError] = TransientError, sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn``; on a transient failure retry with exponential backoff, then raise ``error``
    naming the attempts made. Terminal failures (bad SQL, a missing column) are raised at
    once: retrying cannot help.

    The first attempt runs before tenacity is imported: almost every call succeeds at once,
    and a short process (a steady cycle) should not pay for the retry machinery it does not
    use. A transient first failure is handed to tenacity as its own first attempt.
    """
    try:
        return fn()
    except Exception as exc:
        if not is_transient(exc):  # what tenacity would not retry either
            raise
        first: list[BaseException] = [exc]

    def attempt() -> T:
        if first:
            raise first.pop()  # the failure already seen, counted as attempt 1
        return fn()

    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    retrying = Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=backoff, max=60),
        retry=retry_if_exception(is_transient),
        before_sleep=_log_retry(what, retries), sleep=sleep, reraise=True)
    try:
        return retrying(attempt)
    except Exception as exc:
        if not is_transient(exc) or isinstance(exc, error):
            raise
        attempts = retrying.statistics.get("attempt_number", retries + 1)
        raise error(
            f"{what} failed after {attempts} attempt{'' if attempts == 1 else 's'} "
            f"({redact(first_line(exc))}). Check that "
            "the server is running and OT_SOURCE_URL / OT_WAREHOUSE_URL point at it; then "
            "retry (exit 75 means: try again later).") from None


def connect_with_retries(db: Database, *, retries: int, backoff: float) -> Connection:
    """A connection to ``db``: transient failures retried, the rest one terminal line."""
    error = WarehouseUnavailable if db.role == "warehouse" else SourceUnavailable
    var = f"OT_{db.role.upper()}_URL"
    try:
        return with_retries(db.engine.connect, what=f"connecting to the {db.role} {db.display}",
                            retries=retries, backoff=backoff, error=error)
    except OTError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified: every other failure is terminal
        hint = advice(exc) or (f"check {var}: host, port, database name, user, password "
                               "and options")
        raise TerminalError(
            f"cannot connect to the {db.role} {db.display} ({redact(first_line(exc))}); "
            f"{hint}") from None


"""The project's exceptions, and how a database error is classified.

Two families, so callers (the retry loops, the job runner, the scheduler, the CLI's exit
code) can decide without parsing messages: ``TransientError`` may succeed if retried (a
server that is restarting, a dropped connection, a lock held by another run);
``TerminalError`` will fail the same way until a person changes something, and its message
says what to change. ``DataCheckFailed`` is the terminal outcome of a check that ran and
found the data wrong (a comparison or monitoring above its limit).

Exit codes of every command (docs/errors.md#exit-codes): 0 ok, 1 a data check failed, 2 bad usage or
configuration, 3 a terminal failure, 75 a transient failure (retry later).
"""

from __future__ import annotations

from collections.abc import Callable

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_TERMINAL, EXIT_TRANSIENT = 0, 1, 2, 3, 75


class OTError(Exception):
    """Base of every error this project raises on purpose."""


class TerminalError(OTError):
    """Retrying will not help: the message names the object and the fix."""


class TransientError(OTError):
    """Retrying later may help (connection refused, server restarting, lock busy)."""


class ConfigError(TerminalError):
    """The configuration file or an environment setting is invalid."""


class ContractError(TerminalError):
    """A source or warehouse table does not match the contract (docs/contracts.md)."""


class DataCheckFailed(TerminalError):
    """A check ran and found the data wrong; its result was kept."""


class SourceUnavailable(TransientError):
    """The source database could not be reached after bounded retries."""


class WarehouseUnavailable(TransientError):
    """The warehouse could not be reached after bounded retries."""


class UsageError(TerminalError):
    """A command-line or parameter value is malformed."""


class ClockError(UsageError):
    """A cycle's instant is ahead of the source's clock or behind what was already read."""


class JobError(UsageError):
    """A job or a job parameter that does not exist or does not fit: nothing was run."""


class MonitoringFailed(DataCheckFailed):
    """At least one daily check failed; every check has run and been recorded."""


class CompareFailed(DataCheckFailed):
    """A comparison found rows the warehouse holds wrong (see ``quality/compare``)."""


class ValueOutOfContract(ContractError):
    """A source value the warehouse column cannot hold exactly."""


class SourceReadError(TerminalError):
    """The source could not be read for a reason retrying cannot fix."""


class JobLocked(TransientError):
    """Another run of the same job holds its lock."""

    def __init__(self, job: str, holder: str):
        super().__init__(
            f"job {job!r} is already running ({holder}); this run was skipped. "
            "Wait for it to finish, or remove a stale lock only if that process is gone."
        )
        self.job = job
        self.holder = holder


class PermissionMissing(TerminalError):
    """The warehouse user lacks a grant; the message names it."""


class ExtraMissing(ConfigError):
    """An optional dependency is not installed; the message names the pip command."""


# -- classifying driver errors -------------------------------------------------------------------
TRANSIENT_HINTS = (
    "can't connect", "connection refused", "could not connect", "server has gone away",
    "lost connection", "connection reset", "timeout", "timed out", "could not translate host",
    "the database system is starting up", "terminating connection", "too many connections",
    "could not set lock", "conflicting lock", "database is locked", "server closed the connection",
    "connection timed out", "no route to host", "the database system is shutting down",
    "cannot connect now", "server shutdown in progress", "broken pipe", "unexpected eof",
    "connection was killed", "connection closed", "os error 104", "os error 111",
    "connection aborted", "gone away",
)


# engine modules add what only their driver raises (ot_core/engines)
_TRANSIENT_CHECKS: list[Callable[[BaseException], bool]] = []


def add_transient_check(check: Callable[[BaseException], bool]) -> None:
    """Teach :func:`is_transient` an engine's own exception (an engine module calls this)."""
    _TRANSIENT_CHECKS.append(check)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` later may succeed (by type, then by the driver's message)."""
    import sqlalchemy as sa

    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, OTError):
        return False
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, OSError,
                        sa.exc.DBAPIError, ConnectionError, TimeoutError)):
        text = str(exc).lower()
        return any(h in text for h in TRANSIENT_HINTS)
    return any(check(exc) for check in _TRANSIENT_CHECKS)


def first_line(exc: BaseException) -> str:
    """The driver's own first line of ``exc`` (without SQLAlchemy's wrapping)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


ADVICE: list[tuple[str, str]] = [
    ("no space left on device", "free space where the warehouse lives, then rerun: what was "
                                "not committed was rolled back"),
    ("read-only file system", "the folder is read-only: point OT_DATA_DIR or OT_WAREHOUSE_URL "
                              "at a writable place"),
]


def add_advice(hint: str, what: str) -> None:
    """Advice for an engine's own failure text (an engine module calls this)."""
    ADVICE.append((hint, what))


def advice(exc: BaseException) -> str | None:
    """What to do about an unexpected failure the operator can fix, when its text says it."""
    text = str(exc).lower()
    return next((what for hint, what in ADVICE if hint in text), None)


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an exception that reached the command line."""
    if isinstance(exc, DataCheckFailed):
        return EXIT_CHECK_FAILED
    if isinstance(exc, (UsageError, ConfigError)):
        return EXIT_USAGE
    if is_transient(exc):
        return EXIT_TRANSIENT
    return EXIT_TERMINAL


def _classes(base: type[OTError] = OTError) -> dict[str, type[OTError]]:
    out = {base.__name__: base}
    for sub in base.__subclasses__():
        out.update(_classes(sub))
    return out


def exit_code_of(ename: str | None, *, default: int = EXIT_CHECK_FAILED) -> int:
    """The exit code of a job whose notebook failed with an exception named ``ename`` (what
    papermill records): the project's own errors keep their meaning across the kernel
    boundary (75 transient, 2 usage, 3 terminal, 1 a data check); anything else — a
    failing cell, a kernel that died, a timeout — is ``default`` (a failed run)."""
    cls = _classes().get(str(ename or ""))
    if cls is None:
        return default
    if issubclass(cls, DataCheckFailed):
        return EXIT_CHECK_FAILED
    if issubclass(cls, (UsageError, ConfigError)):
        return EXIT_USAGE
    if issubclass(cls, TransientError):
        return EXIT_TRANSIENT
    return EXIT_TERMINAL

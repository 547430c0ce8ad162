"""The project's exceptions.

Two families, so callers (the cycle's retry loop, the job runner, the scheduler) can decide
without parsing messages: ``TransientError`` may succeed if retried (a server that is
restarting, a dropped connection, a lock held by another run); ``TerminalError`` will fail
the same way until a person changes something, and its message says what to change. The
command line maps them to exit codes (docs/errors.md#exit-codes).
"""

from __future__ import annotations


class OTError(Exception):
    """Base of every error this project raises on purpose."""


class TerminalError(OTError):
    """Retrying will not help: the message names the object and the fix."""


class TransientError(OTError):
    """Retrying later may help (connection refused, server restarting, lock busy)."""


class DataCheckFailed(TerminalError):
    """A data check ran and found a problem (comparison, monitoring): the command worked,
    the data needs attention."""


class ConfigError(TerminalError):
    """The configuration file or an environment setting is invalid."""


class ContractError(TerminalError):
    """A source or warehouse table does not match the contract (docs/contracts.md)."""


class SourceUnavailable(TransientError):
    """The source database could not be reached after bounded retries."""


class WarehouseUnavailable(TransientError):
    """The warehouse could not be reached after bounded retries."""


class UsageError(TerminalError):
    """A command-line or parameter value is malformed."""


class ClockError(UsageError):
    """A cycle's instant is ahead of the source's clock or behind what was already read."""


class JobError(TerminalError):
    """A job definition, parameter or run failed."""


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

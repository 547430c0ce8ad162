"""``ot``: a thin command line. Every command parses its options and calls one library
function; :mod:`ot_core.cli.base` turns the project's errors into one line on stderr and a
documented exit code (docs/errors.md#exit-codes). The commands live in one module per area;
importing this package registers them all on :data:`main`."""

from ot_core.cli import audit, jobs, ops, pipeline, quality, roles  # noqa: F401 - registers
from ot_core.cli.base import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_TERMINAL,
    EXIT_TRANSIENT,
    EXIT_USAGE,
    handle_errors,
    main,
)

__all__ = ["EXIT_CHECK_FAILED", "EXIT_OK", "EXIT_TERMINAL", "EXIT_TRANSIENT", "EXIT_USAGE",
           "handle_errors", "main"]

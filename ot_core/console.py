"""The ``ot`` executable: run the command line, then leave without tearing Python down.

Why: a steady ``ot cycle`` is a sub-second process, and measured on one, the interpreter's
own teardown (clearing some 570 modules and their final garbage-collection passes) took
60-90 ms of it after every connection was already closed. So when the command has
returned, this entry point does what an ordinary exit does that matters (the ``atexit``
handlers, which include the logging flush; the standard streams flushed) and ends the
process with ``os._exit``. Files and connections are not left to teardown: every command
closes what it opens (the warehouse handle releases its file at the end of each block, which
a test checks from the outside; compare closes its in-process DuckDB).

It leaves the ordinary way when another non-daemon thread is still alive (its work must
finish) and when an exception escapes the command line (the interpreter prints it).
``python -m ot_core`` always leaves the ordinary way, for profilers and debuggers that
write their output at exit.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def main() -> None:
    from ot_core.cli import main as cli

    try:
        cli(prog_name="ot")
        code: int = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    leave(code)


def _exit_code(value: object) -> int:
    """What ``sys.exit(value)`` would make of ``value``: a message is printed, exit 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def leave(code: int) -> None:
    """Exit with ``code``: quickly when no other non-daemon thread is left, else the ordinary
    way (which waits for those threads; daemon threads, such as tqdm's monitor, are stopped
    by either)."""
    if any(t.is_alive() and not t.daemon
           for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # noqa: SLF001 - the handlers an ordinary exit would run
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is None:  # started with that descriptor closed
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say there
            pass
    os._exit(code)

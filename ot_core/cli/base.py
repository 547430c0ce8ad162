"""The command line's frame: the ``ot`` group, error handling and shared options.

``ot`` is a thin command line. Every command parses its options and calls one library
function; the library raises the project's errors, and this module turns them into a
message on stderr and an exit code (docs/errors.md#exit-codes): 1 a data check failed,
2 bad usage or configuration, 3 terminal (fix what the message names), 75 transient (retry
later)."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import traceback
from datetime import datetime

import click

from ot_core import errors
from ot_core.secrets import redact
from ot_core.timeutil import parse_as_of

# the documented exit codes (docs/errors.md#exit-codes), one place: ot_core.errors
EXIT_OK = errors.EXIT_OK
EXIT_CHECK_FAILED = errors.EXIT_CHECK_FAILED
EXIT_USAGE = errors.EXIT_USAGE
EXIT_TERMINAL = errors.EXIT_TERMINAL
EXIT_TRANSIENT = errors.EXIT_TRANSIENT


class IsoInstant(click.ParamType):
    name = "ISO-8601"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_as_of(value)
        except errors.UsageError as e:
            self.fail(str(e), param, ctx)


ISO = IsoInstant()


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


def handle_errors(fn):
    """Map every exception to one line on stderr and a documented exit code (EXIT_*);
    the traceback only under -v. Database errors are classified here too, so a driver's
    100-line traceback never reaches an operator."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - classified: one line and an exit code
            code = errors.exit_code(e)
            if _verbose() and not isinstance(e, errors.OTError):  # unexpected: show where
                click.echo(redact(traceback.format_exc()), err=True)
            if isinstance(e, errors.OTError):
                text = str(e)
            else:
                text = f"{type(e).__name__}: {errors.first_line(e)}"
                hint = errors.advice(e)
                text += f" — {hint}" if hint else ""
                text += " (run with -v for the traceback)" if not _verbose() else ""
            prefix = "transient: " if code == EXIT_TRANSIENT else "error: "
            click.echo(f"ot: {prefix}{redact(text)}", err=True)
            sys.exit(code)

    return wrapper


class OTGroup(click.Group):
    """Usage errors in the same one-line form as every other error (``ot: error: ...``,
    exit 2), with where to read the usage, instead of click's usage dump."""

    def main(self, args=None, prog_name=None, complete_var=None,
             standalone_mode=True, **extra):
        run = functools.partial(super().main, args, prog_name, complete_var,
                                standalone_mode=False, **extra)
        if not standalone_mode:
            return run()
        try:
            result: object = run()
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "ot"
            click.echo(f"ot: error: {redact(e.format_message())} (see `{where} --help`)",
                       err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(name="ot", cls=OTGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log each step (INFO level) to stderr.")
@click.option("--log-json", "log_json", is_flag=True,
              help="Log one JSON object per event on stderr, the pipeline's events at INFO (also "
                   "OT_LOG_FORMAT=json), for a log system; secrets redacted as everywhere.")
def main(verbose: bool, log_json: bool) -> None:
    """Order-tracking workbench: extract orders, tracking states and path events from the
    source into the warehouse marts every 15 minutes, and run the scheduled jobs.

    Connections come from the environment: OT_SOURCE_URL and OT_WAREHOUSE_URL (SQLAlchemy
    URLs). Unset, they default to an embedded SQLite source and DuckDB warehouse in one data
    folder (OT_DATA_DIR, else the per-user data folder). The pipeline configuration is
    --config or OT_CONFIG (default: the one shipped with the package).

    \b
    Exit codes: 0 ok; 1 a data check failed; 2 bad usage or configuration;
    3 a terminal failure (fix what the message names); 75 transient: retry later.
    """
    if log_json or _json_format(os.environ.get("OT_LOG_FORMAT", "")):
        setup_json_logging(sys.stderr)
    else:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _json_format(value: object) -> bool:
    """OT_LOG_FORMAT: 'json' turns JSON logs on, 'text' (the default) leaves them off."""
    text = str(value).strip().lower()
    if text in ("", "text"):
        return False
    if text == "json":
        return True
    raise click.UsageError(f"OT_LOG_FORMAT={value!r} is not a log format: use json or text")


def json_formatter() -> logging.Formatter:
    """The JSON formatter (python-json-logger, imported only when asked for)."""
    from pythonjsonlogger.json import JsonFormatter

    class RedactingJsonFormatter(JsonFormatter):
        """One JSON object a line: time (UTC, ISO), level, logger, message and the event's
        fields (``extra=``: event, run_id, batch_id, table, rows, seconds ...), with every
        known secret removed like everywhere else."""

        def __init__(self) -> None:
            super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level",
                                            "name": "logger"},
                             datefmt="%Y-%m-%dT%H:%M:%SZ", json_default=str)
            self.converter = time.gmtime

        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    return RedactingJsonFormatter()


def setup_json_logging(stream) -> None:
    """One JSON handler on ``stream`` for the root logger (replacing the one an earlier
    call added; handlers others installed are left alone)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.set_name("ot-json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "ot-json"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    logging.getLogger("ot").setLevel(logging.INFO)  # the pipeline's events


config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False), default=None, envvar="OT_CONFIG",
    help="Pipeline config YAML (default: OT_CONFIG, else the one shipped with the package).")



def echo_json(value) -> None:
    """Every --json prints one JSON document on stdout: an object, or a list of objects for
    a listing (empty list when there is nothing), with dates as ISO text."""
    click.echo(json.dumps(value, default=str))


def frame_records(frame) -> list[dict]:
    return [{k: (None if v != v else v) for k, v in row.items()}  # NaN → null
            for row in frame.to_dict(orient="records")]


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document instead of a table.")


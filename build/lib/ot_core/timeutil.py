"""One clock for the whole pipeline: as_of instants, epoch seconds and half-year arithmetic.

Source times are unix epoch seconds (UTC). Every bound the SQL compares against is computed
here in Python and bound as an integer, never with ``extract(epoch ...)`` in SQL (its type
differs between DuckDB, PostgreSQL and Redshift).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

from ot_core.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# source times are INT UNSIGNED epoch seconds: instants outside these years are typos
EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_as_of(value: str | datetime | None) -> datetime:
    """Parse an ISO-8601 instant; naive values are UTC. ``None`` means now."""
    if value is None:
        return utcnow().replace(microsecond=0)
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(
                f"as_of {value!r} is not an ISO-8601 date or time; "
                "use e.g. 2026-11-26 or 2026-11-26T06:15:00Z"
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if not EARLIEST <= dt <= LATEST:
        raise UsageError(f"as_of {value!r} is outside {EARLIEST.year}-{LATEST.year - 1}; "
                         "source times are unix epoch seconds")
    return dt


def to_epoch(dt: datetime) -> int:
    """Whole epoch seconds (floor): the exclusive upper bound of an extraction."""
    return calendar.timegm(dt.astimezone(UTC).utctimetuple())


def from_epoch(seconds: int | float) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def parse_duration(value: str | int) -> int:
    """'15m', '6h', '1d' or plain seconds → seconds (at least one second)."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif str(value).strip().isdigit():
        seconds = int(str(value).strip())
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise UsageError(f"duration {value!r} is not understood; use e.g. 900, 15m, 6h or 1d")
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise UsageError(f"duration {value!r} is zero; use at least one second, e.g. 15m")
    return seconds


def add_months(dt: datetime, months: int) -> datetime:
    """Calendar month arithmetic, day clamped to the month's length (Aug 31 - 6 months = Feb 28)."""
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    day = min(dt.day, calendar.monthrange(year, month + 1)[1])
    return dt.replace(year=year, month=month + 1, day=day)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_floor(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


__all__ = [
    "add_months",
    "day_floor",
    "from_epoch",
    "iso",
    "parse_as_of",
    "parse_duration",
    "to_epoch",
    "utcnow",
    "timedelta",
]

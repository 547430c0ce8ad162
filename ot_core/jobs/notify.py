"""Where alerts go and how one is delivered: Apprise URLs, one per destination.

Apprise speaks e-mail (``mailto://``, ``mailtos://``), Slack, Teams, Google Chat and a
generic JSON webhook (``json://host:port/path``) with one URL syntax operators already know,
so no sender is written here. Destinations come from, first that is set:

- ``OT_NOTIFY``: one or more URLs separated by spaces or new lines;
- ``OT_NOTIFY_FILE``: a file with one URL a line (``#`` comments), for URLs carrying a
  password or token that should not sit in the environment;
- the config file's ``alerts.notify`` list, where ``${NAME}`` is replaced by the environment
  variable ``NAME`` (the file names the secret, the environment holds it).

A destination URL is a secret as a whole (its password, a webhook's token in the path): it
is registered for redaction, shown only in Apprise's privacy form, and identified in the
warehouse by a hash. A send that fails returns its reason instead of raising: an alert that
cannot be delivered never fails the job that raised it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ot_core.errors import ConfigError
from ot_core.secrets import redact, remember_secret

if TYPE_CHECKING:
    from ot_core.config import PipelineConfig

log = logging.getLogger("ot.notify")
_SPLIT = re.compile(r"\s+")


class _Redacting(logging.Filter):
    """Apprise logs a URL it refuses and some server replies: scrub them like ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


logging.getLogger("apprise").addFilter(_Redacting())


@dataclass(frozen=True)
class Destination:
    """One Apprise URL. ``url`` is secret: print ``shown`` instead."""

    url: str
    position: int  # 1-based, in the order configured: how messages name it

    @property
    def id(self) -> str:
        """Stable and secret-free: the key of this destination's rows in ot_alerts."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @cached_property
    def shown(self) -> str:
        """The URL with its password and tokens masked (Apprise's privacy form)."""
        _remember(self.url)
        plugin = _instantiate(self.url)
        text = str(plugin.url(privacy=True)) if plugin is not None else "(not understood)"
        for part in secret_parts(self.url):
            text = text.replace(part, "***")
        return redact(text)


def _instantiate(url: str):
    """Apprise's plugin for ``url``, or None. Apprise's own log line about a URL it refuses
    quotes the URL whole: it is silenced here (our message names the position instead)."""
    import apprise

    logger = logging.getLogger("apprise")
    was, logger.disabled = logger.disabled, True
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        logger.disabled = was


def secret_parts(url: str) -> list[str]:
    """The parts of ``url`` that may be secret: its password and every long path or query
    part (webhook tokens live there), as written and decoded."""
    from urllib.parse import parse_qsl, quote, unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]  # not even a URL: all of it
    found = [parts.password] if parts.password else []
    found += [p for p in [*parts.path.split("/"), *(v for _k, v in parse_qsl(parts.query))]
              if len(p) >= 12]
    out = {v for p in found for v in (p, unquote(p), quote(unquote(p), safe=""))}
    return sorted(out, key=len, reverse=True)


def _remember(url: str) -> None:
    """Register the secret parts of ``url`` for redaction everywhere."""
    for part in secret_parts(url):
        remember_secret(part)


def _expand(text: str, where: str) -> str:
    try:
        return string.Template(text).substitute(os.environ)
    except KeyError as e:
        raise ConfigError(f"{where} names the environment variable {e.args[0]}, which is not "
                          "set: export it (it holds the destination's secret)") from None
    except ValueError:
        raise ConfigError(f"{where} has a '$' that is not ${{NAME}}: write $$ for a "
                          "literal dollar sign") from None


def configured_urls(cfg: PipelineConfig) -> tuple[list[str], str]:
    """The destination URLs and where they came from (for messages)."""
    env = os.environ.get("OT_NOTIFY", "").strip()
    if env:
        return [u for u in _SPLIT.split(env) if u], "OT_NOTIFY"
    file = os.environ.get("OT_NOTIFY_FILE", "").strip()
    if file:
        try:
            text = Path(file).read_text()
        except OSError as e:
            raise ConfigError(f"OT_NOTIFY_FILE {file} cannot be read ({e.strerror}): fix the "
                              "path or its permissions") from None
        lines = [ln.strip() for ln in text.splitlines()]
        return [ln for ln in lines if ln and not ln.startswith("#")], "OT_NOTIFY_FILE"
    return [_expand(u, f"alerts.notify entry {n}")
            for n, u in enumerate(cfg.alerts.notify, 1)], "the config's alerts.notify"


def destinations(cfg: PipelineConfig) -> list[Destination]:
    """Every configured destination, each understood by Apprise (else ConfigError naming
    its position, never its text)."""
    urls, origin = configured_urls(cfg)
    out = []
    for n, url in enumerate(urls, 1):
        _remember(url)
        if _instantiate(url) is None:
            scheme = url.split("://", 1)[0] if "://" in url else "(none)"
            raise ConfigError(
                f"destination {n} of {origin} (scheme {scheme!r}) is not an Apprise URL it "
                "understands: see docs/operations.md#destinations for mailtos://, slack://, "
                "json://host:port/path and the other forms")
        out.append(Destination(url, n))
    return out


def send(dest: Destination, title: str, body: str, *, timeout: float = 10.0) -> str | None:
    """Deliver one message; None when it was accepted, else the reason (redacted). Never
    raises: the caller records the failure and retries on its next evaluation."""
    import apprise

    _remember(dest.url)
    plugin = _instantiate(dest.url)
    if plugin is None:
        return "not an Apprise URL"
    # a destination that is down must not hold the caller: bounded connect and read
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    plugin.request_rate_per_sec = 0  # no throttle sleep between messages of one evaluation
    box = apprise.Apprise()
    box.add(plugin)
    try:
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = bool(box.notify(body=redact(body), title=redact(title),
                                 body_format=apprise.NotifyFormat.TEXT))
            reasons = captured.getvalue().strip()
    except Exception as e:  # noqa: BLE001 - a plugin's own failure: reported, never raised
        ok, reasons = False, f"{type(e).__name__}: {e}"
    if ok:
        return None
    reason = redact(" ".join(reasons.split()) or "the destination refused it")
    log.warning("alert to destination %d (%s) not delivered: %s", dest.position, dest.shown,
                reason)
    return reason


@dataclass
class Delivery:
    destination: str  # shown form
    ok: bool
    error: str | None


def send_test(config: PipelineConfig | str | None = None) -> list[Delivery]:
    """``ot notify test``: one test message to every destination; which worked."""
    import socket

    from ot_core.config import resolve_config
    from ot_core.timeutil import iso, utcnow

    cfg = resolve_config(config)
    dests = destinations(cfg)
    if not dests:
        raise ConfigError("no alert destination is configured: set OT_NOTIFY (or "
                          "OT_NOTIFY_FILE, or alerts.notify in the config), e.g. "
                          "OT_NOTIFY='mailtos://user@mail.example.com?to=oncall@example.com'")
    out = []
    for d in dests:
        err = send(d, "ot: test alert",
                   f"A test message from ot on {socket.gethostname()} at {iso(utcnow())}. "
                   "Alerts about failing checks, jobs, freshness and old exceptions will "
                   "come here (docs/operations.md).",
                   timeout=cfg.alerts.send_timeout_seconds)
        out.append(Delivery(d.shown, err is None, err))
    return out

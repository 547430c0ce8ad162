"""Secrets never leave the process: every known password is scrubbed from text that does
(logs, error lines, executed notebooks, job-run rows), and URLs are shown masked."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_SECRETS: set[str] = set()


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

"""URLs as they may be shown or stored: credentials replaced by `***`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
# Query keys whose values are credentials (access tokens, signed-URL signatures, API keys).
_SECRET_KEY = re.compile(
    r"token|secret|passw|pwd|signature|credential|api_?key|access_?key|session|^(key|sig|auth)$",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """`url` with any user:password and credential-like query values replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = "&".join(_redact_pair(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_pair(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    return f"{key}={REDACTED}" if eq and _SECRET_KEY.search(key) else pair

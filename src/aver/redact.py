"""Keep secrets out of outputs: credentials in URLs become `***` in files, logs and errors.

Redacted: the userinfo of a URL (`https://user:pass@host` -> `https://***:***@host`), the
values of credential-like query parameters (`token`, `access_token`, `api_key`, `sig`,
`password`, `client_secret`, `X-Amz-Signature`, ...; also in a bare `/path?token=...`), and
`Authorization:` header values. Scheme, host, port, path and other parameters are kept.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# The last `_`/`-`/`.`-separated part of a parameter name that marks its value as a secret.
_SECRET_WORDS = (
    "token|secret|password|passwd|pwd|pass|key|apikey|sig|signature|credential|credentials|auth"
)
_KEY = rf"(?:[\w.-]*[_.-])?(?:{_SECRET_WORDS})"
SECRET_KEY = re.compile(rf"(?i){_KEY}")  # fullmatch: a query parameter holding a secret
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s'\"<>]*)@")
_QUERY = re.compile(rf"(?i)([?&;]{_KEY}=)[^&;#\s'\"<>]+")
_AUTH_HEADER = re.compile(
    r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic|token)\s+)?)[^\s'\",}]+"
)


def redact_uri(uri: str) -> str:
    """`uri` with its userinfo and credential-like query values replaced by `***`."""
    return redact_text(uri)


def redact_text(text: str) -> str:
    """`text` with every URL's credentials (and `Authorization:` values) replaced by `***`."""
    if not text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _QUERY.sub(lambda m: m.group(1) + MASK, text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like object (dicts, lists, strings, ...) with every string redacted."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


def _mask_userinfo(match: re.Match[str]) -> str:
    return match.group(1) + (f"{MASK}:{MASK}" if ":" in match.group(2) else MASK) + "@"


class RedactingFilter(logging.Filter):
    """Redacts a record's message and exception text (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def install_log_redaction() -> None:
    """Redact every log record from now on: messages at creation (all loggers), exception texts
    in every handler configured so far (root, mlflow, ...). Idempotent."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "aver_redacts", False):

        def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            _redact_record(record)
            return record

        make_record.aver_redacts = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(make_record)
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to logging's own error report
        return
    clean = redact_text(message)
    if clean != message:
        record.msg, record.args = clean, None

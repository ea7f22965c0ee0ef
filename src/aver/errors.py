"""User-facing errors: each names the file involved and what to do about it (credentials in
URLs redacted)."""

from __future__ import annotations

from pathlib import Path

from aver.redact import redact_text


class AverError(Exception):
    """An error a user can act on; printed without a traceback by the stage runner."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        message = redact_text(message)
        self.path = None if path is None else redact_text(str(path))
        self.fix = None if fix is None else redact_text(fix)
        parts = [f"{self.path}: {message}" if self.path else message]
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        super().__init__("\n".join(parts))


class ConfigError(AverError):
    """params.yaml is invalid."""


class DataError(AverError):
    """Input data (media, tables, caches) is missing or unusable."""


class DownloadError(AverError):
    """A download failed or did not verify."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: a stage stops as on Ctrl-C (checkpoints and partial
    directories kept, MLflow runs KILLED) and exits with 143."""

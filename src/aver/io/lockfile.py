"""Trust on first use for downloads that have no published checksum.

The first download of such a file records its sha256, size and the server's ETag/Last-Modified
in a lock file (`downloads.lock.json`, keyed by the URL with credentials redacted). Every later
run verifies the file against its entry, so a file changed on the server or on disk is refused
instead of being used silently. `aver.io.http.download(..., lock=...)` does the checking; a file
with a known checksum never gets an entry.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aver.errors import DataError
from aver.io.atomic import write_json
from aver.redact import redact_uri

log = logging.getLogger(__name__)

LOCK_NAME = "downloads.lock.json"
VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pin:
    """What a file without a published checksum was when it was first downloaded."""

    file: str  # relative to the lock file's folder when inside it
    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    pinned_at: str = ""


class DownloadLock:
    """The pins in one lock file; thread-safe, every change written atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._mutex = threading.Lock()
        self._pins = self._read()
        self.new: list[str] = []  # files pinned by this process, for `log_new`

    def key(self, url: str) -> str:
        """The entry name of `url`: the URL with any credentials redacted."""
        return redact_uri(url)

    def get(self, url: str) -> Pin | None:
        with self._mutex:
            return self._pins.get(self.key(url))

    def pin(
        self,
        url: str,
        file: str | Path,
        *,
        sha256: str,
        size: int,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> Pin:
        """Record `file` (just downloaded from `url`) and write the lock file."""
        entry = Pin(
            file=self._relative(file),
            sha256=sha256.lower(),
            size=size,
            etag=etag,
            last_modified=last_modified,
            pinned_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        with self._mutex:
            pins = {**self._read(), self.key(url): entry}  # keep entries written meanwhile
            write_json(self.path, {"version": VERSION, "files": _dump(pins)})
            self._pins = pins
            self.new.append(entry.file)
        return entry

    def log_new(self) -> None:
        """One INFO line listing the files pinned by this process (if any), then forget them."""
        with self._mutex:
            new, self.new = sorted(self.new), []
        if new:
            log.info(
                "pinned on first use (no published checksum; later runs verify them against "
                "%s): %s",
                self.path,
                ", ".join(new),
            )

    def _relative(self, file: str | Path) -> str:
        path = Path(os.path.abspath(file))
        try:
            return path.relative_to(Path(os.path.abspath(self.path.parent))).as_posix()
        except ValueError:
            return str(path)

    def _read(self) -> dict[str, Pin]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            files = data["files"]
            return {str(url): _load(entry) for url, entry in files.items()}
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise DataError(
                f"unreadable download lock file ({type(err).__name__}: {err})",
                path=self.path,
                fix="restore it (git / dvc checkout), or delete it to pin every file without a "
                "published checksum again on the next download",
            ) from None


def _load(entry: Any) -> Pin:
    pin = Pin(**entry)
    if not _SHA256.match(pin.sha256) or not isinstance(pin.size, int) or pin.size < 0:
        raise ValueError(f"bad sha256 or size in {entry}")
    return pin


def _dump(pins: dict[str, Pin]) -> dict[str, dict[str, Any]]:
    return {url: asdict(pin) for url, pin in sorted(pins.items())}

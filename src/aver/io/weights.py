"""Weights files of pretrained networks: a local file, or a verified one-time download.

The one place for what RetinaFace and the pretrained encoders share: a configured local file
(checked against its sha256 when one is given), a file already in a cache, or a download into
that cache (`aver.io.http.download`: resumed, verified against a given sha256, else pinned on
first use in `downloads.lock.json` beside it). With `AVER_OFFLINE=1` nothing is downloaded. The
sha256 of the file used is always returned (from the `.verified` stamp when fresh, so a 1 GB
file is not rehashed every run). Torch-free; `aver.io.state_dict` reads the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aver.errors import AverError, DataError, DownloadError
from aver.io.http import download, stamped_sha256
from aver.io.lockfile import LOCK_NAME, DownloadLock
from aver.redact import redact_uri

OFFLINE_ENV = "AVER_OFFLINE"


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file on disk, its sha256, and where it came from."""

    path: Path
    sha256: str
    source: str  # "local" (configured), "cache" (already there) or "download"


def offline() -> bool:
    """True when `$AVER_OFFLINE` forbids downloads (any value but empty, 0, false, no)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def checked_file(
    path: str | Path, *, sha256: str | None, what: str, fix: str, source: str = "local"
) -> ResolvedWeights:
    """A weights file already on disk; with `sha256` it must have that digest."""
    path = Path(path)
    digest = stamped_sha256(path)
    if sha256 and digest != sha256.lower():
        raise DataError(
            f"{what}: sha256 is {digest}, expected {sha256.lower()}", path=path, fix=fix
        )
    return ResolvedWeights(path, digest, source)


def fetch_once(
    url: str, dest: str | Path, *, sha256: str | None, what: str, fix: str, **transfer: Any
) -> ResolvedWeights:
    """`dest` when it is there and verifies, else a verified download of `url` into it.

    Without `sha256` the file is pinned on first use in `<dest folder>/downloads.lock.json` and
    verified against the pin afterwards. Offline, a file already at `dest` is checked against
    `sha256` (or its pin) without any request; a missing one is a DownloadError. `transfer` goes
    to `aver.io.http.download` (retries, timeouts: `DownloadConfig.transfer_kwargs()`).
    """
    dest = Path(dest)
    shown = redact_uri(url)
    lock = DownloadLock(dest.parent / LOCK_NAME)
    if offline():
        if dest.is_file():
            pin = lock.get(url)
            pinned = pin.sha256 if pin is not None else None
            return checked_file(dest, sha256=sha256 or pinned, what=what, fix=fix, source="cache")
        raise DownloadError(
            f"{what} is not there and {OFFLINE_ENV}=1 forbids downloading it from {shown}",
            path=dest,
            fix=fix,
        )
    existed = dest.is_file()
    try:
        download(url, dest, sha256=sha256, lock=lock, **transfer)
        lock.log_new()
    except (AverError, OSError) as err:
        raise DownloadError(
            f"could not fetch {what} from {shown} ({err})", path=dest, fix=fix
        ) from None
    return ResolvedWeights(dest, stamped_sha256(dest), "cache" if existed else "download")

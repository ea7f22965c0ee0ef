"""Streaming file checksums (md5, sha256) in one pass over the file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ALGORITHMS = ("md5", "sha256")
CHUNK_BYTES = 1 << 20


def new_hashers(algorithms: Iterable[str]) -> dict[str, Any]:
    """Fresh hash objects keyed by algorithm name ("md5", "sha256")."""
    out = {}
    for algo in algorithms:
        if algo not in ALGORITHMS:
            raise ValueError(f"unsupported checksum {algo!r}; use one of {ALGORITHMS}")
        out[algo] = hashlib.new(algo) if algo != "md5" else hashlib.md5(usedforsecurity=False)
    return out


def update_from_file(
    hashers: dict[str, Any],
    path: str | Path,
    *,
    limit: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> int:
    """Feed the first `limit` bytes of `path` (all when None) to every hasher; return bytes read."""
    done = 0
    with open(path, "rb") as fh:
        while limit is None or done < limit:
            want = chunk_bytes if limit is None else min(chunk_bytes, limit - done)
            block = fh.read(want)
            if not block:
                break
            for h in hashers.values():
                h.update(block)
            done += len(block)
    return done


def file_digests(
    path: str | Path, algorithms: Iterable[str] = ALGORITHMS, *, chunk_bytes: int = CHUNK_BYTES
) -> dict[str, str]:
    """Hex digests of `path` for each algorithm, reading the file once."""
    hashers = new_hashers(algorithms)
    update_from_file(hashers, path, chunk_bytes=chunk_bytes)
    return {algo: h.hexdigest() for algo, h in hashers.items()}


def md5sum(path: str | Path) -> str:
    return file_digests(path, ("md5",))["md5"]


def sha256sum(path: str | Path) -> str:
    return file_digests(path, ("sha256",))["sha256"]

"""Atomic file writes: write to a temp file beside the target, fsync, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `target`; rename it onto `target` only if the block succeeds.

    `suffix` is appended to the temp name (some writers infer the format from it, e.g. ".png").
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file for writing that replaces `target` atomically on success."""
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_text(target: str | Path, text: str) -> None:
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_npy(target: str | Path, array: np.ndarray) -> None:
    with atomic_open(target, "wb") as fh:
        np.save(fh, array)


def write_csv(target: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV atomically (no index column)."""
    with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)


def partial_dir(out: str | Path) -> Path:
    """Work directory for a resumable stage: `<out>.partial` beside `out` (git-ignored).

    DVC deletes a stage's outputs before rerunning it, so finished items are kept here, skipped
    on rerun, and the whole directory is renamed onto `out` by `promote_dir` at the end.
    """
    out = Path(out)
    work = out.with_name(out.name + ".partial")
    work.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(work)
    return work


def remove_stale_temps(root: str | Path) -> int:
    """Delete temp files a killed run left under `root` (the writers here name them
    `.<name>.<random>.tmp<suffix>`); resumable `.part` downloads are kept. Returns the count."""
    stale = [p for p in Path(root).rglob(".*.tmp*") if p.is_file() and ".tmp" in p.name]
    for path in stale:
        path.unlink()
    return len(stale)


def promote_dir(work: str | Path, out: str | Path) -> None:
    """Replace `out` with the finished work directory (one rename; the old `out` is removed)."""
    import shutil

    work, out = Path(work), Path(out)
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)

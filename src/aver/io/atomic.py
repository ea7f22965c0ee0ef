"""Atomic, durable writes: write to a temp file beside the target, fsync, rename, fsync the dir.

Every promotion in aver (a temp file onto its name, a work directory onto a stage's output) goes
through `promote_file` or `promote_dir` here.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
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
        promote_file(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def fsync_file(path: str | Path) -> None:
    """Flush a file's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (names created, renamed or removed in it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def promote_file(tmp: str | Path, target: str | Path, *, sync_dir: bool = True) -> None:
    """fsync `tmp`, rename it onto `target`, then fsync the directory holding both.

    `sync_dir=False` leaves the directory fsync to a caller that promotes many files there.
    """
    fsync_file(tmp)
    os.replace(tmp, target)
    if sync_dir:
        fsync_dir(Path(target).parent)


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
    on rerun, and the whole directory is renamed onto `out` by `promote_dir` at the end. An old
    output a killed `promote_dir` left aside is put back first (see `recover_aside`).
    """
    out = Path(out)
    recover_aside(out)
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


def aside_path(out: str | Path) -> Path:
    """Where `promote_dir` moves the old `out` while renaming the new one in: `<out>.old-<pid>`."""
    out = Path(out)
    return out.with_name(f"{out.name}.old-{os.getpid()}")


def recover_aside(out: str | Path) -> None:
    """Clean up after a `promote_dir` killed between its renames.

    If `out` is missing, the newest `<out>.old-*` is renamed back onto it; the rest are deleted.
    """
    out = Path(out)
    found = out.parent.glob(f"{glob.escape(out.name)}.old-[0-9]*")
    asides = sorted(found, key=lambda p: p.stat().st_mtime_ns)
    if not asides:
        return
    if not out.exists():
        os.rename(asides.pop(), out)
    for old in asides:
        shutil.rmtree(old)
    fsync_dir(out.parent)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and directory under `root` (files first, then their directory)."""
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                fsync_file(path)
        fsync_dir(dirpath)


def promote_dir(work: str | Path, out: str | Path) -> None:
    """Replace `out` with the finished work directory, durably; `out` is never lost.

    Everything in `work` is fsynced; an existing `out` is renamed aside (`aside_path`), `work`
    renamed onto `out`, the parent fsynced, and only then the old output deleted. If the second
    rename raises, the old output is put back; if the process dies there, `recover_aside` (run by
    `partial_dir` and here) puts it back on the next run.
    """
    work, out = Path(work), Path(out)
    recover_aside(out)
    fsync_tree(work)
    if not out.exists():
        os.rename(work, out)
        fsync_dir(out.parent)
        return
    old = aside_path(out)
    os.rename(out, old)
    try:
        os.rename(work, out)
    except BaseException:
        os.rename(old, out)
        raise
    fsync_dir(out.parent)
    shutil.rmtree(old)

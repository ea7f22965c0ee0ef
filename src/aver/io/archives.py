"""Safe extraction of .zip and .tar(.gz/.bz2/.xz) archives.

Every entry is checked before anything is written: absolute paths, `..` components, names that
resolve outside the target, links and device files are refused with a DataError, and so is an
archive whose total uncompressed size is over `max_bytes`, whose compression ratio is over
`max_ratio` (a zip bomb), or that would leave less than `margin_bytes` free at the target. The
sizes are those the archive declares; zipfile and tarfile never write more than that. Regular
files are written through a temp file and a rename, and a marker (`target/.extracted-<archive>`)
lets a rerun skip an archive whose extraction finished.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

from aver.errors import DataError
from aver.io.atomic import fsync_dir, promote_file, write_json
from aver.progress import bar as progress_bar

REFETCH = "delete the archive and rerun the download stage to fetch it again"
# Defaults of download.max_archive_bytes, download.max_compression_ratio and
# download.extract_margin_bytes (aver.config.DownloadConfig).
MAX_BYTES = 200_000_000_000
MAX_RATIO = 100.0
MARGIN_BYTES = 256 << 20


@dataclass(frozen=True)
class _Entry:
    name: str  # as stored in the archive
    rel: PurePosixPath  # validated path relative to the target
    is_dir: bool
    mode: int  # permission bits (0 when unknown)
    size: int = 0  # uncompressed bytes (0 for directories)


def marker_path(archive: str | Path, target: str | Path) -> Path:
    """The file that records a finished extraction of `archive` into `target`."""
    return Path(target) / f".extracted-{Path(archive).name}"


def safe_extract(
    archive: str | Path,
    target: str | Path,
    *,
    progress: bool = True,
    max_bytes: int = MAX_BYTES,
    max_ratio: float = MAX_RATIO,
    margin_bytes: int = MARGIN_BYTES,
) -> list[Path]:
    """Extract `archive` into `target`; return the extracted files (not directories).

    Raises DataError naming the archive and the entry when any entry is unsafe, or naming the
    sizes when the archive is too large, too compressed or does not fit on the disk; in those
    cases nothing at all is extracted. Skips the work when the marker says this archive (same
    size and mtime) was already extracted and its files are still there.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise DataError("archive not found", path=archive, fix="rerun the download stage")
    target.mkdir(parents=True, exist_ok=True)
    done = _finished(archive, target)
    if done is not None:
        return done
    with _open(archive) as (entries, opener):
        root = target.resolve()
        checked = [_check(archive, root, *entry) for entry in entries]
        _check_sizes(archive, target, checked, max_bytes, max_ratio, margin_bytes)
        files: list[Path] = []
        for entry in progress_bar(
            checked, desc=f"extract {archive.name}", unit="file", disable=not progress
        ):
            dest = target.joinpath(*entry.rel.parts)
            if entry.is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            _write_file(archive, entry, dest, opener)
            files.append(dest)
    _fsync_dirs(target, files)
    st = archive.stat()
    rel = sorted({f.relative_to(target).as_posix() for f in files})
    write_json(
        marker_path(archive, target),
        {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "files": rel},
    )
    return [target / r for r in rel]


def _fsync_dirs(target: Path, files: list[Path]) -> None:
    """fsync `target`, its parent and every directory under `target` that holds a file."""
    dirs = {target, target.parent}
    for path in files:
        dirs.update(p for p in path.parents if p == target or target in p.parents)
    for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(directory)


def _finished(archive: Path, target: Path) -> list[Path] | None:
    """The files of an earlier complete extraction of this same archive, else None."""
    try:
        marker = json.loads(marker_path(archive, target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    st = archive.stat()
    if not isinstance(marker, dict) or (marker.get("size"), marker.get("mtime_ns")) != (
        st.st_size,
        st.st_mtime_ns,
    ):
        return None
    files = [target / r for r in marker.get("files", [])]
    return files if all(f.is_file() for f in files) else None


# An opener returns a readable binary stream for an entry name.
Opener = Callable[[str], IO[bytes]]
# (name, kind, mode, size) where kind is "file", "dir" or a description of a refused kind.
RawEntry = tuple[str, str, int, int]


@contextmanager
def _open(archive: Path) -> Iterator[tuple[list[RawEntry], Opener]]:
    """List an archive's entries and give an opener for its regular files."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                yield [_zip_entry(info) for info in zf.infolist()], zf.open
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                members = {m.name: m for m in tf.getmembers()}

                def opener(name: str) -> IO[bytes]:
                    fh = tf.extractfile(members[name])
                    if fh is None:
                        raise DataError(f"cannot read entry {name!r}", path=archive, fix=REFETCH)
                    return fh

                yield [_tar_entry(m) for m in members.values()], opener
        else:
            raise DataError("not a zip or tar archive", path=archive, fix=REFETCH)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, OSError) and not _is_archive_error(err):
            raise
        raise DataError(f"corrupt archive: {err}", path=archive, fix=REFETCH) from None


def _is_archive_error(err: OSError) -> bool:
    # gzip.BadGzipFile and lzma/bz2 stream errors derive from OSError; disk errors do not match.
    return type(err).__module__ in ("gzip", "_lzma", "lzma", "_compression", "bz2", "zlib")


def _zip_entry(info: zipfile.ZipInfo) -> RawEntry:
    mode = info.external_attr >> 16
    ftype = stat.S_IFMT(mode)
    if info.is_dir():
        kind = "dir"
    elif ftype in (0, stat.S_IFREG):  # 0: no unix mode recorded (e.g. made on Windows)
        kind = "file"
    else:
        kind = _describe(ftype)
    return info.filename, kind, stat.S_IMODE(mode), info.file_size


def _tar_entry(member: tarfile.TarInfo) -> RawEntry:
    if member.isfile():
        kind = "file"
    elif member.isdir():
        kind = "dir"
    elif member.issym():
        kind = f"symlink to {member.linkname!r}"
    elif member.islnk():
        kind = f"hardlink to {member.linkname!r}"
    elif member.ischr() or member.isblk():
        kind = "device file"
    elif member.isfifo():
        kind = "fifo"
    else:
        kind = f"special entry (type {member.type!r})"
    return member.name, kind, member.mode & 0o777, member.size if member.isfile() else 0


def _describe(ftype: int) -> str:
    return {
        stat.S_IFLNK: "symlink",
        stat.S_IFCHR: "device file",
        stat.S_IFBLK: "device file",
        stat.S_IFIFO: "fifo",
        stat.S_IFSOCK: "socket",
    }.get(ftype, f"special entry (mode {ftype:o})")


def _check(archive: Path, root: Path, name: str, kind: str, mode: int, size: int) -> _Entry:
    """Validate one entry; raise DataError naming the archive and the entry if it is unsafe."""

    def refuse(why: str) -> DataError:
        return DataError(
            f"unsafe archive entry {name!r}: {why}; nothing was extracted",
            path=archive,
            fix="do not use this archive; check where it came from and its checksum",
        )

    if kind not in ("file", "dir"):
        raise refuse(f"{kind} entries are not allowed")
    if not name or "\x00" in name:
        raise refuse("empty or invalid name")
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        raise refuse("absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse("'..' path component")
    if not parts:
        if kind == "dir":  # "./" itself
            return _Entry(name, PurePosixPath("."), True, mode)
        raise refuse("empty path")
    rel = PurePosixPath(*parts)
    resolved = root.joinpath(*parts).resolve()
    if resolved != root and root not in resolved.parents:
        raise refuse(f"resolves outside {root}")
    return _Entry(name, rel, kind == "dir", mode, size if kind == "file" else 0)


def _check_sizes(
    archive: Path,
    target: Path,
    entries: list[_Entry],
    max_bytes: int,
    max_ratio: float,
    margin_bytes: int,
) -> None:
    """Refuse an archive too large, too compressed, or larger than the free disk space."""
    total = sum(e.size for e in entries)
    packed = max(archive.stat().st_size, 1)
    n = sum(not e.is_dir for e in entries)
    if total > max_bytes:
        raise DataError(
            f"archive would extract to {total:,} bytes ({n} files), over "
            f"download.max_archive_bytes = {max_bytes:,}; nothing was extracted",
            path=archive,
            fix="if this archive is really that large, raise download.max_archive_bytes in "
            "params.yaml; otherwise check where it came from",
        )
    ratio = total / packed
    if ratio > max_ratio:
        raise DataError(
            f"archive expands {ratio:,.0f}x ({packed:,} bytes -> {total:,} bytes), over "
            f"download.max_compression_ratio = {max_ratio:g} (a zip bomb?); nothing was extracted",
            path=archive,
            fix="do not use this archive unless you trust it; if its content really compresses "
            "that well, raise download.max_compression_ratio in params.yaml",
        )
    free = shutil.disk_usage(target).free
    if free < total + margin_bytes:
        raise DataError(
            f"not enough disk space to extract it into {target}: needs {total:,} bytes plus "
            f"download.extract_margin_bytes = {margin_bytes:,}, {free:,} bytes free; nothing was "
            "extracted",
            path=archive,
            fix=f"free disk space on the disk holding {target} (or move data.root), then rerun; "
            "lower download.extract_margin_bytes only if you are sure the rest fits",
        )


def _write_file(archive: Path, entry: _Entry, dest: Path, opener: Opener) -> None:
    """Copy one entry to `dest` through a temp file in the same directory."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with opener(entry.name) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
                if isinstance(err, OSError) and not (_is_archive_error(err) or "CRC" in str(err)):
                    raise
                raise DataError(
                    f"corrupt entry {entry.name!r}: {err}", path=archive, fix=REFETCH
                ) from None
        # Regular permissions only (no setuid/setgid/sticky); readable by the owner at least.
        os.chmod(tmp, (entry.mode & 0o777 or 0o644) | 0o600)
        promote_file(tmp, dest, sync_dir=False)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

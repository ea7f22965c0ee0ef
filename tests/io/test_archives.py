"""aver.io.archives.safe_extract on real zip and tar files, good and malicious."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from aver.errors import DataError
from aver.io.archives import marker_path, safe_extract

GOOD = {"actor_01/a.txt": b"alpha", "actor_01/sub/b.bin": bytes(range(256)) * 40, "c.txt": b""}


def make_zip(path: Path, entries: list[tuple[str, bytes, int | None]]) -> Path:
    """entries: (name, data, unix mode incl. file type or None)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)  # keeps the name verbatim ('/abs', '../x')
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            if isinstance(m, tuple):
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
            else:
                tf.addfile(m)
    return path


def tar_info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def area(tmp_path: Path) -> tuple[Path, Path]:
    """(dir holding the archive and the target, target); the holder is checked for escapes."""
    holder = tmp_path / "holder"
    (holder / "target").mkdir(parents=True)
    return holder, holder / "target"


@pytest.mark.parametrize(
    ("name", "data", "mode", "why"),
    [
        ("../evil.txt", b"x", None, "'..' path component"),
        ("ok/../../evil.txt", b"x", None, "'..' path component"),
        ("..\\evil.txt", b"x", None, "'..' path component"),
        ("/ABS/evil.txt", b"x", None, "absolute path"),
        ("C:/evil.txt", b"x", None, "absolute path"),
        ("link", b"../../evil.txt", stat.S_IFLNK | 0o777, "symlink"),
        ("fifo", b"", stat.S_IFIFO | 0o644, "fifo"),
    ],
)
def test_malicious_zip_is_refused_and_writes_nothing(area, name, data, mode, why):
    holder, target = area
    archive = make_zip(holder / "bad.zip", [("fine/first.txt", b"ok", None), (name, data, mode)])
    before = tree(holder)
    with pytest.raises(DataError) as info:
        safe_extract(archive, target, progress=False)
    msg = str(info.value)
    assert str(archive) in msg and repr(name) in msg and why in msg
    assert tree(holder) == before  # nothing written anywhere, not even the safe first entry
    assert not Path("/ABS").exists()


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (("../evil.txt", b"x"), "'..' path component"),
        (("/ABS/evil.txt", b"x"), "absolute path"),
        (tar_info("link", tarfile.SYMTYPE, "/etc"), "symlink"),
        (tar_info("hard", tarfile.LNKTYPE, "../outside"), "hardlink"),
        (tar_info("dev", tarfile.CHRTYPE), "device file"),
        (tar_info("blk", tarfile.BLKTYPE), "device file"),
        (tar_info("pipe", tarfile.FIFOTYPE), "fifo"),
    ],
)
def test_malicious_tar_is_refused_and_writes_nothing(area, member, why):
    holder, target = area
    archive = make_tar(holder / "bad.tar.gz", [("fine.txt", b"ok"), member])
    before = tree(holder)
    with pytest.raises(DataError) as info:
        safe_extract(archive, target, progress=False)
    assert str(archive) in str(info.value) and why in str(info.value)
    assert tree(holder) == before


def test_symlinked_dir_already_in_target_cannot_be_written_through(area, tmp_path):
    holder, target = area
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / "escape").symlink_to(outside, target_is_directory=True)
    archive = make_zip(holder / "a.zip", [("escape/evil.txt", b"x", None)])
    with pytest.raises(DataError, match="resolves outside"):
        safe_extract(archive, target, progress=False)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar.bz2", "tar.xz", "tar"])
def test_good_archive_extracts_and_a_rerun_skips(area, kind):
    holder, target = area
    archive = holder / f"good.{kind}"
    if kind == "zip":
        make_zip(archive, [(n, d, None) for n, d in GOOD.items()] + [("actor_01/", b"", None)])
    else:
        with tarfile.open(archive, "w:" + kind.removeprefix("tar").lstrip(".")) as tf:
            for name, data in GOOD.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    files = safe_extract(archive, target, progress=False)
    assert sorted(f.relative_to(target).as_posix() for f in files) == sorted(GOOD)
    for name, data in GOOD.items():
        assert (target / name).read_bytes() == data
    assert marker_path(archive, target).is_file()
    assert not [p for p in target.rglob("*.tmp")]

    # Rerun: the marker says done, so an edited file is left alone (proves no re-extraction).
    (target / "c.txt").write_bytes(b"edited")
    assert safe_extract(archive, target, progress=False) == files
    assert (target / "c.txt").read_bytes() == b"edited"

    # A file gone missing makes the rerun extract again.
    (target / "actor_01" / "a.txt").unlink()
    safe_extract(archive, target, progress=False)
    assert (target / "actor_01" / "a.txt").read_bytes() == b"alpha"
    assert (target / "c.txt").read_bytes() == b""


def test_not_an_archive_and_truncated_archive(area):
    holder, target = area
    junk = holder / "junk.zip"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(DataError, match="not a zip or tar archive"):
        safe_extract(junk, target, progress=False)

    good = make_tar(holder / "t.tar.gz", [("big.bin", os.urandom(200_000))])
    cut = holder / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:50_000])
    with pytest.raises(DataError, match="corrupt"):
        safe_extract(cut, target, progress=False)
    assert not marker_path(cut, target).exists()


def make(kind: str, path: Path, entries: dict[str, bytes]) -> Path:
    if kind == "zip":
        return make_zip(path.with_suffix(".zip"), [(n, d, None) for n, d in entries.items()])
    return make_tar(path.with_suffix(".tar.gz"), list(entries.items()))


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_over_the_size_limit_is_refused_and_writes_nothing(area, kind):
    holder, target = area
    archive = make(kind, holder / "big", {"a/one.bin": os.urandom(60_000), "b.bin": b"x" * 10})
    with pytest.raises(DataError) as info:
        safe_extract(archive, target, progress=False, max_bytes=50_000)
    msg = str(info.value)
    assert str(archive) in msg and "60,010 bytes (2 files)" in msg and "50,000" in msg
    assert "download.max_archive_bytes" in msg and "nothing was extracted" in msg
    assert tree(target) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_zip_bomb_ratio_is_refused_and_writes_nothing(area, kind):
    holder, target = area
    archive = make(kind, holder / "bomb", {"zeros.bin": bytes(5_000_000)})
    ratio = 5_000_000 / archive.stat().st_size
    assert ratio > 100  # the default limit
    with pytest.raises(DataError) as info:
        safe_extract(archive, target, progress=False)
    msg = str(info.value)
    assert str(archive) in msg and f"{ratio:,.0f}x" in msg and "5,000,000 bytes" in msg
    assert "download.max_compression_ratio = 100" in msg
    assert tree(target) == []
    # Trusted on purpose: a higher limit lets it through.
    safe_extract(archive, target, progress=False, max_ratio=ratio + 1)
    assert (target / "zeros.bin").stat().st_size == 5_000_000


def test_not_enough_free_disk_space_is_refused_and_writes_nothing(area, monkeypatch):
    holder, target = area
    archive = make_zip(holder / "a.zip", [(n, d, None) for n, d in GOOD.items()])
    total = sum(map(len, GOOD.values()))
    seen = []

    def disk_usage(path):
        seen.append(Path(path))
        return shutil._ntuple_diskusage(10**9, 10**9 - total - 999, total + 999)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    with pytest.raises(DataError) as info:
        safe_extract(archive, target, progress=False, margin_bytes=1000)
    msg = str(info.value)
    assert seen == [target] and str(archive) in msg and str(target) in msg
    assert f"needs {total:,} bytes" in msg and f"{total + 999:,} bytes free" in msg
    assert "download.extract_margin_bytes = 1,000" in msg and "free disk space" in msg
    assert tree(target) == []
    safe_extract(archive, target, progress=False, margin_bytes=999)  # exactly fits
    assert (target / "actor_01" / "a.txt").read_bytes() == b"alpha"

"""Atomic, durable promotion: fsyncs, and resumable work dirs that never lose the old output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aver.io.atomic import partial_dir, promote_dir, write_csv, write_json


def test_reopened_partial_dir_drops_stale_temps_and_promotes_clean(tmp_path):
    import pandas as pd

    out = tmp_path / "features"
    work = partial_dir(out)
    (work / "shard-00000").mkdir()
    done = work / "shard-00000" / "done.json"
    done.write_text("{}")
    stale = [work / ".index.csv.5qedf4vw.tmp", work / "shard-00000" / ".audio.npy.abc.tmp.npy"]
    for path in stale:
        path.write_bytes(b"half written")
    keep = work / "clip.mp4.part"  # a resumable download, not an atomic temp
    keep.write_bytes(b"resume me")

    assert partial_dir(out) == work  # the rerun
    assert not any(p.exists() for p in stale)
    assert done.exists() and keep.exists()
    write_csv(work / "index.csv", pd.DataFrame({"clip_id": ["a"]}))
    promote_dir(work, out)
    names = sorted(p.name for p in out.rglob("*"))
    assert names == ["clip.mp4.part", "done.json", "index.csv", "shard-00000"]


def _record_fsyncs(monkeypatch) -> list[tuple[str, str]]:
    """Record ("fsync", path) for each os.fsync and ("rename", dst) for each rename/replace."""
    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src, dst) -> None:
        real_rename(src, dst)
        events.append(("rename", str(dst)))

    def replace(src, dst) -> None:
        real_replace(src, dst)
        events.append(("rename", str(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_write_fsyncs_the_file_then_its_directory_after_the_rename(tmp_path, monkeypatch):
    events = _record_fsyncs(monkeypatch)
    target = tmp_path / "metrics.json"
    write_json(target, {"f1": 0.5})
    renamed = events.index(("rename", str(target)))
    synced_before = [p for kind, p in events[:renamed] if kind == "fsync"]
    assert any(Path(p).name.startswith(".metrics.json.") for p in synced_before)  # the temp file
    assert ("fsync", str(tmp_path)) in events[renamed:]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_promote_dir_fsyncs_every_file_and_directory(tmp_path, monkeypatch):
    out = tmp_path / "features"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    work = partial_dir(out)
    (work / "shard-00000").mkdir()
    (work / "shard-00000" / "audio.npy").write_bytes(b"a")  # not written through atomic_path
    (work / "index.csv").write_text("clip_id\n")
    files = {str(p) for p in work.rglob("*") if p.is_file()}
    dirs = {str(work), str(work / "shard-00000")}
    events = _record_fsyncs(monkeypatch)
    promote_dir(work, out)
    renamed = events.index(("rename", str(out)))
    synced_before = {p for kind, p in events[:renamed] if kind == "fsync"}
    assert files | dirs <= synced_before
    assert ("fsync", str(tmp_path)) in events[renamed:]
    assert sorted(p.name for p in out.iterdir()) == ["index.csv", "shard-00000"]


def _old_and_new(tmp_path: Path) -> tuple[Path, Path]:
    """An existing output `out` (old.txt) and a finished work dir for it (new.txt)."""
    out = tmp_path / "faces"
    out.mkdir()
    (out / "old.txt").write_text("old")
    work = partial_dir(out)
    (work / "new.txt").write_text("new")
    return work, out


def _names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_promote_dir_keeps_the_old_output_when_renaming_the_new_one_in_fails(tmp_path, monkeypatch):
    work, out = _old_and_new(tmp_path)
    real_rename, real_replace = os.rename, os.replace

    def fail_onto_out(real):
        def rename(src, dst) -> None:
            if Path(src) == work and Path(dst) == out:
                raise OSError("disk full")
            real(src, dst)

        return rename

    monkeypatch.setattr(os, "rename", fail_onto_out(real_rename))
    monkeypatch.setattr(os, "replace", fail_onto_out(real_replace))
    with pytest.raises(OSError, match="disk full"):
        promote_dir(work, out)
    assert _names(out) == ["old.txt"] and _names(work) == ["new.txt"]
    monkeypatch.undo()
    promote_dir(work, out)
    assert _names(out) == ["new.txt"] and not work.exists()
    assert _names(tmp_path) == ["faces"]


KILL_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from aver.io.atomic import promote_dir

work, out = Path(sys.argv[1]), Path(sys.argv[2])
real_rename, real_replace = os.rename, os.replace

def die_onto_out(real):
    def rename(src, dst):
        if Path(src) == work and Path(dst) == out:
            os._exit(9)  # killed just before the new output is renamed in
        real(src, dst)
    return rename

os.rename, os.replace = die_onto_out(real_rename), die_onto_out(real_replace)
promote_dir(work, out)
"""


def test_a_run_killed_between_the_renames_is_recovered_on_rerun(tmp_path, venv_env):
    work, out = _old_and_new(tmp_path)
    args = [sys.executable, "-c", KILL_BETWEEN_RENAMES, str(work), str(out)]
    assert subprocess.run(args, env=venv_env, check=False).returncode == 9
    asides = list(tmp_path.glob("faces.old-*"))
    assert [_names(p) for p in [out, *asides] if p.exists()] == [["old.txt"]]  # not lost

    assert partial_dir(out) == work  # the rerun: the old output is back, the work kept
    assert _names(out) == ["old.txt"] and _names(work) == ["new.txt"]
    assert _names(tmp_path) == ["faces", "faces.partial"]
    promote_dir(work, out)
    assert _names(out) == ["new.txt"]
    assert _names(tmp_path) == ["faces"]


def test_a_leftover_aside_dir_beside_the_new_output_is_deleted(tmp_path):
    out = tmp_path / "media"
    out.mkdir()
    (out / "new.txt").write_text("new")
    aside = tmp_path / "media.old-4242"  # killed after the new output was renamed in
    aside.mkdir()
    (aside / "old.txt").write_text("old")
    work = partial_dir(out)
    assert not aside.exists() and _names(out) == ["new.txt"]
    promote_dir(work, out)
    assert _names(tmp_path) == ["media"]

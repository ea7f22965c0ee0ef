"""Resumable work directories: a rerun drops the temp files a killed run left, keeps the rest."""

from __future__ import annotations

from aver.io.atomic import partial_dir, promote_dir, write_csv


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

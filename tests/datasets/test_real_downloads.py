"""The cremad and ravdess download paths on real bytes, served by a loopback HTTP server.

CREMA-D: the six official VideoFlash clips, verified against the real LFS manifest's sha256 and
size. RAVDESS: a Zenodo-style record whose per-actor zips are built from the real mp4 clips,
verified by the record's md5. Both must index exactly the labels and speakers of clips.csv.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from aver.datasets.download import run
from aver.datasets.ravdess import archive_name
from aver.errors import AverError
from tests.datasets.conftest import make_params, zip_bytes
from tests.support.real_clips import REAL_CLIPS, real_clips

FAST = {"retries": 0, "backoff_s": 0.0, "timeout_s": 10.0, "workers": 2}
CREMAD_TABLES = REAL_CLIPS.parent / "cremad"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cremad_params(file_server, root: Path) -> object:
    if not (CREMAD_TABLES / "lfs-manifest.tsv").is_file():
        pytest.skip(f"{CREMAD_TABLES} has no lfs-manifest.tsv")
    cremad = {
        "manifest": str(CREMAD_TABLES / "lfs-manifest.tsv"),
        "tables": str(CREMAD_TABLES),
        "media_url": file_server.url("/media"),
        "folder": "VideoFlash",
        "limit": 6,  # the first six sorted names: actor 1001's DFA clips, the real files here
    }
    return make_params({"dataset": "cremad", "root": str(root), "cremad": cremad}, download=FAST)


def _stems(labels) -> list[str]:
    """Emotion words by their stem: clips.csv says `angry`/`fearful` where CREMA-D's classes
    are `anger`/`fear`."""
    return [str(label)[:3] for label in labels]


def _indexed(root: Path) -> pd.DataFrame:
    index = pd.read_csv(root / "index.csv", dtype=str)
    return index.sort_values("clip_id").reset_index(drop=True)


def test_cremad_download_verifies_the_real_clips_against_the_lfs_manifest(file_server, tmp_path):
    clips = real_clips("cremad").sort_values("clip_id").reset_index(drop=True)
    for clip in clips.itertuples():
        file_server.add(f"/media/VideoFlash/{Path(clip.path).name}", Path(clip.file).read_bytes())
    root = tmp_path / "raw"
    run(_cremad_params(file_server, root))
    index = _indexed(root)
    assert index["clip_id"].tolist() == clips["clip_id"].tolist()
    assert _stems(index["label"]) == _stems(clips["label"])
    assert index["speaker"].tolist() == clips["speaker"].tolist()
    for row, clip in zip(index.itertuples(), clips.itertuples()):
        assert _sha256(root / row.path) == clip.sha256


def test_cremad_download_refuses_a_clip_whose_bytes_differ_from_the_manifest(file_server, tmp_path):
    clips = real_clips("cremad")
    for i, clip in enumerate(clips.itertuples()):
        data = Path(clip.file).read_bytes()
        if i == 0:  # one flipped byte, same size
            data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
        file_server.add(f"/media/VideoFlash/{Path(clip.path).name}", data)
    root = tmp_path / "raw"
    with pytest.raises(AverError, match=Path(clips["path"][0]).name):
        run(_cremad_params(file_server, root))
    assert not (root / "cremad" / "VideoFlash" / Path(clips["path"][0]).name).exists()


def test_ravdess_download_from_a_zenodo_record_of_real_clips(file_server, tmp_path):
    clips = real_clips("ravdess").sort_values("clip_id").reset_index(drop=True)
    actors = sorted({int(s) for s in clips["speaker"]})
    entries = []
    for actor in actors:
        mine = clips[clips["speaker"].astype(int) == actor]
        members = {f"Actor_{actor:02d}/{Path(c.path).name}": c.file for c in mine.itertuples()}
        data = zip_bytes({name: Path(file).read_bytes() for name, file in members.items()})
        name = archive_name(actor)
        url = file_server.add(f"/api/records/1188976/files/{name}/content", data)
        entries.append(
            {
                "key": name,
                "size": len(data),
                "checksum": "md5:" + hashlib.md5(data).hexdigest(),
                "links": {"content": url, "self": file_server.url(f"/files/{name}")},
            }
        )
    record = file_server.add_json("/api/records/1188976", {"files": entries})
    root = tmp_path / "raw"
    ravdess = {"record_url": record, "actors": actors}
    run(make_params({"dataset": "ravdess", "root": str(root), "ravdess": ravdess}, download=FAST))
    index = _indexed(root)
    assert index["clip_id"].tolist() == clips["clip_id"].tolist()
    assert index["label"].tolist() == clips["label"].tolist()
    assert [int(s) for s in index["speaker"]] == [int(s) for s in clips["speaker"]]
    for row, clip in zip(index.itertuples(), clips.itertuples()):
        assert _sha256(root / row.path) == clip.sha256

"""The folder dataset: the user's CSV, its validation errors, paths and clip ids."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from aver.datasets.download import run
from aver.datasets.folder import FolderDataset, clip_ids
from aver.errors import ConfigError, DataError
from tests.datasets.conftest import make_params, touch


def _params(csv: Path, media_dir: Path | None = None):
    cfg = {"csv": str(csv), "media_dir": str(media_dir) if media_dir else None}
    return make_params({"folder": cfg})


def test_samples_classes_and_paths(tmp_path):
    root = tmp_path / "raw"
    home = tmp_path / "videos"
    elsewhere = tmp_path / "other" / "far.mov"
    touch(home, "a/one.mp4", "b/one.mp4", "two clip.mp4")
    touch(root, "mine/three.mp4")
    touch(elsewhere.parent, elsewhere.name)
    csv = home / "list.csv"
    csv.write_text(
        "path,label,speaker\n"
        "a/one.mp4,joy,s1\n"
        "b/one.mp4, anger ,s2\n"
        "two clip.mp4,joy,s1\n"
        f"{elsewhere},calm,s3\n"
        f"{root / 'mine' / 'three.mp4'},anger,s2\n"
    )
    params = _params(csv)
    spec = FolderDataset()
    assert spec.class_names(params) == ("anger", "calm", "joy")
    samples = spec.samples(root, params)
    got = {s.clip_id: (s.path, s.label, s.speaker) for s in samples}
    assert got == {
        "a__one": (str((home / "a" / "one.mp4").resolve()), "joy", "s1"),
        "b__one": (str((home / "b" / "one.mp4").resolve()), "anger", "s2"),
        "two_clip": (str((home / "two clip.mp4").resolve()), "joy", "s1"),
        "far": (str(elsewhere.resolve()), "calm", "s3"),
        "three": ("mine/three.mp4", "anger", "s2"),  # under data.root: relative
    }
    assert [s.clip_id for s in samples] == sorted(got)
    assert all((root / s.path).is_file() for s in samples)
    assert spec.folds(samples) == 3


def test_media_dir_resolves_relative_paths(tmp_path):
    touch(tmp_path / "media", "x.mp4", "y.mp4")
    csv = tmp_path / "lists" / "l.csv"
    csv.parent.mkdir()
    csv.write_text("speaker,label,path\nA,happy,x.mp4\nB,sad,y.mp4\n")  # any column order
    samples = FolderDataset().samples(tmp_path / "raw", _params(csv, tmp_path / "media"))
    assert [(s.clip_id, s.label, s.speaker) for s in samples] == [
        ("x", "happy", "A"),
        ("y", "sad", "B"),
    ]
    with pytest.raises(DataError, match="do not exist"):
        FolderDataset().samples(tmp_path / "raw", _params(csv))  # relative to the CSV's dir


def test_csv_not_set_or_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.folder\.csv is not set"):
        FolderDataset().samples(tmp_path, make_params())
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="CSV not found") as err:
        FolderDataset().class_names(_params(missing))
    assert str(missing) in str(err.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file,label,speaker\nx.mp4,a,s\n", "missing column.*path"),
        ("path,label\nx.mp4,a\n", "missing column.*speaker"),
        ("", "missing column"),
        ("path,label,speaker\n", "lists no videos"),
        ("path,label,speaker\nx.mp4,a,s\ny.mp4,,s\n", r"row 2 \(line 3\): empty label"),
        ("path,label,speaker\nx.mp4,a,s\ny.mp4,b\n", r"row 2 \(line 3\): empty speaker"),
        ("path,label,speaker\n,a,s\n", r"row 1 \(line 2\): empty path"),
        ("path,label,speaker\nx.mp4,a,s\n./x.mp4,b,t\n", r"row 2 \(line 3\) repeats"),
    ],
)
def test_validation_errors_name_the_csv_row_and_fix(tmp_path, text, match):
    touch(tmp_path, "x.mp4", "y.mp4")
    csv = tmp_path / "videos.csv"
    csv.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        FolderDataset().samples(tmp_path, _params(csv))
    assert str(csv) in str(err.value) and "Fix:" in str(err.value)


def test_missing_files_are_listed(tmp_path):
    touch(tmp_path, "ok.mp4")
    rows = "".join(f"gone{i}.mp4,a,s\n" for i in range(8))
    csv = tmp_path / "v.csv"
    csv.write_text("path,label,speaker\nok.mp4,a,s\n" + rows)
    with pytest.raises(DataError) as err:
        FolderDataset().samples(tmp_path, _params(csv))
    msg = str(err.value)
    assert "8 listed file(s) do not exist" in msg
    assert "row 2: " in msg and "gone0.mp4" in msg and "gone4.mp4" in msg
    assert "gone5.mp4" not in msg and "and 3 more" in msg
    assert "data.folder.media_dir" in msg


def test_clip_ids_are_unique_and_safe():
    files = [Path("/d/a/x.mp4"), Path("/d/b/x.mp4"), Path("/e/a/x.mov"), Path("/d/é y.mp4")]
    ids = clip_ids(files)
    assert len(set(ids)) == 4
    assert ids[3] == "y"  # unsafe characters become '_' and are stripped at the ends
    assert ids[0].endswith("x") and ids[1] == "b__x"
    assert all(i.replace("_", "").replace("-", "").isalnum() for i in ids)


def test_download_stage_indexes_media_in_place(tmp_path):
    touch(tmp_path / "videos", "p1.mp4", "p2.mp4", "p3.mp4", data=b"not really a video")
    csv = tmp_path / "videos" / "list.csv"
    csv.write_text("path,label,speaker\np2.mp4,sad,bob\np1.mp4,happy,ann\np3.mp4,happy,bob\n")
    root = tmp_path / "raw"
    params = make_params({"dataset": "folder", "root": str(root), "folder": {"csv": str(csv)}})
    run(params)
    index = pd.read_csv(root / "index.csv", dtype=str)
    assert index[["clip_id", "label", "speaker"]].values.tolist() == [
        ["p1", "happy", "ann"],
        ["p2", "sad", "bob"],
        ["p3", "happy", "bob"],
    ]
    assert index["path"].tolist() == [
        str((tmp_path / "videos" / f"p{i}.mp4").resolve()) for i in (1, 2, 3)
    ]
    assert json.loads((root / "dataset.json").read_text())["classes"] == ["happy", "sad"]
    assert not (root / "p1.mp4").exists()  # media stays where it is

"""The folder dataset: the user's CSV, its validation errors, paths and clip ids."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aver.datasets.download import run
from aver.datasets.folder import FolderDataset, clip_ids
from aver.errors import ConfigError, DataError
from aver.features.splits import make_splits
from tests.datasets.conftest import make_params, touch

# 3 speakers, 2 classes of 3 clips: the smallest listing the default folds (3) accept
_ROWS = [("happy", "ann"), ("happy", "bob"), ("happy", "cat")]
_ROWS += [("sad", "ann"), ("sad", "bob"), ("sad", "cat")]


def _listing(folder: Path, rows: list[tuple[str, str]], name: str = "list.csv") -> Path:
    """Files p0.mp4 ... in `folder` and a CSV listing them with the given (label, speaker)."""
    touch(folder, *(f"p{i}.mp4" for i in range(len(rows))), data=b"not really a video")
    csv = folder / name
    lines = [f"p{i}.mp4,{label},{speaker}" for i, (label, speaker) in enumerate(rows)]
    csv.write_text("path,label,speaker\n" + "\n".join(lines) + "\n")
    return csv


def _params(csv: Path, media_dir: Path | None = None, **folder: Any):
    cfg = {"csv": str(csv), "media_dir": str(media_dir) if media_dir else None, **folder}
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
    params = _params(csv, allow_outside_media_dir=True)
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
    rows = [("sad", "bob"), ("happy", "ann"), ("happy", "bob"), ("happy", "cat")]
    rows += [("sad", "ann"), ("sad", "cat")]
    csv = _listing(tmp_path / "videos", rows)
    root = tmp_path / "raw"
    params = make_params({"dataset": "folder", "root": str(root), "folder": {"csv": str(csv)}})
    run(params)
    index = pd.read_csv(root / "index.csv", dtype=str)
    assert index[["clip_id", "label", "speaker"]].values.tolist() == [
        [f"p{i}", label, speaker] for i, (label, speaker) in enumerate(rows)
    ]
    assert index["path"].tolist() == [
        str((tmp_path / "videos" / f"p{i}.mp4").resolve()) for i in range(len(rows))
    ]
    assert json.loads((root / "dataset.json").read_text())["classes"] == ["happy", "sad"]
    assert not (root / "p1.mp4").exists()  # media stays where it is


def _error(csv: Path, **folder: Any) -> str:
    """The DataError message of listing `csv` (checks included, as the download stage does)."""
    params = _params(csv, **folder)
    spec = FolderDataset()
    with pytest.raises(DataError) as err:
        samples = spec.samples(csv.parent, params)
        spec.check_samples(samples, list(spec.class_names(params)), params)
    msg = str(err.value)
    assert str(csv) in msg and "Fix:" in msg, msg
    return msg


def test_unknown_label_with_classes_names_the_line_label_and_classes(tmp_path):
    csv = _listing(tmp_path, [*_ROWS[:4], ("Sad", "bob"), ("joy", "cat")])
    msg = _error(csv, classes=["happy", "sad"])
    assert "2 row(s) have a label that is not in data.folder.classes (happy, sad)" in msg
    assert "row 5 (line 6): 'Sad'" in msg and "row 6 (line 7): 'joy'" in msg
    assert "add them to data.folder.classes" in msg


def test_classes_param_sets_the_class_order(tmp_path):
    params = _params(_listing(tmp_path, _ROWS), classes=["sad", "happy"])
    assert FolderDataset().class_names(params) == ("sad", "happy")


def test_labels_are_normalised_and_counted_in_the_log(tmp_path, caplog):
    rows = [(" Happy ", "ann"), ("happy", "bob"), ("HAPPY", "cat"), *_ROWS[3:]]
    params = _params(_listing(tmp_path, rows))
    spec = FolderDataset()
    with caplog.at_level("INFO", logger="aver.datasets.folder"):
        samples = spec.samples(tmp_path, params)
    assert spec.class_names(params) == ("happy", "sad")
    assert {s.label for s in samples} == {"happy", "sad"}
    log = caplog.text
    assert "2 classes" in log and "happy 3, sad 3" in log, log
    assert "'HAPPY' -> 'happy'" in log and "'Happy' -> 'happy'" in log, log


def test_class_with_too_few_clips_is_named_with_its_count_and_fix(tmp_path):
    csv = _listing(tmp_path, [*_ROWS, ("calm", "ann"), ("calm", "bob")])
    msg = _error(csv)
    assert "fewer than 3 clips" in msg and "'calm' 2" in msg, msg
    assert "add clips of those classes" in msg and "cache.n_folds" in msg


def test_a_class_of_data_folder_classes_without_clips_is_refused(tmp_path):
    msg = _error(_listing(tmp_path, _ROWS), classes=["happy", "sad", "calm"])
    assert "'calm' 0" in msg, msg


def test_fewer_speakers_than_folds_is_named_with_the_fix(tmp_path):
    csv = _listing(tmp_path, _ROWS)  # 3 speakers
    params = make_params({"folder": {"csv": str(csv)}}, cache={"n_folds": 5})
    spec = FolderDataset()
    with pytest.raises(DataError) as err:
        spec.check_samples(spec.samples(tmp_path, params), ["happy", "sad"], params)
    msg = str(err.value)
    assert str(csv) in msg and "3 speaker(s) for 5 folds" in msg, msg
    assert "need at least 5 speakers" in msg and "set cache.n_folds: 3" in msg, msg
    two = [(label, "ann" if i % 2 else "bob") for i, (label, _) in enumerate(_ROWS)]
    msg = _error(_listing(tmp_path / "two", two))  # default folds: no split can work
    assert "2 speaker(s) for 2 folds" in msg and "cache.protocol: random" in msg, msg


def test_non_utf8_csv_names_the_file_line_and_fix(tmp_path):
    touch(tmp_path, "a.mp4")
    csv = tmp_path / "list.csv"
    csv.write_bytes(
        "path,label,speaker\na.mp4,happy,ann\na.mp4,gl\u00fccklich,bob\n".encode("latin-1")
    )
    msg = _error(csv)
    assert "is not UTF-8 text" in msg and "line 3" in msg and "0xfc" in msg, msg
    assert "re-save the CSV as UTF-8" in msg


def test_non_utf8_file_name_is_named_with_the_fix(tmp_path):
    (tmp_path / os.fsdecode(b"caf\xe9.mp4")).write_bytes(b"")
    csv = tmp_path / "list.csv"
    csv.write_text("path,label,speaker\ncaf\u00e9.mp4,happy,ann\n", encoding="utf-8")
    msg = _error(csv)
    assert "not valid UTF-8" in msg and "caf\\xe9.mp4" in msg, msg
    assert "rename those files to UTF-8 names" in msg


def test_symlink_to_a_non_utf8_name_is_named(tmp_path):
    (tmp_path / os.fsdecode(b"caf\xe9.mp4")).write_bytes(b"")
    (tmp_path / "cafe.mp4").symlink_to(os.fsdecode(b"caf\xe9.mp4"))
    csv = tmp_path / "list.csv"
    csv.write_text("path,label,speaker\ncafe.mp4,happy,ann\n")
    msg = _error(csv)
    assert "names that are not valid UTF-8" in msg and "caf\\xe9.mp4" in msg, msg


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_path_outside_media_dir_is_refused_unless_allowed(tmp_path, how):
    media, far = tmp_path / "media", tmp_path / "elsewhere" / "far.mp4"
    csv = _listing(media, _ROWS)
    touch(far.parent, far.name)
    (media / "link.mp4").symlink_to(far)
    path = {"absolute": str(far), "dotdot": "../elsewhere/far.mp4", "symlink": "link.mp4"}[how]
    with csv.open("a") as fh:
        fh.write(f"{path},happy,ann\n")
    msg = _error(csv)
    assert "1 listed path(s) lead outside the media folder" in msg, msg
    shown = path if how == "absolute" else f"{path} -> {far.resolve()}"
    assert f"row 7 (line 8): {shown}" in msg, msg
    assert "data.folder.allow_outside_media_dir: true" in msg, msg
    samples = FolderDataset().samples(media, _params(csv, allow_outside_media_dir=True))
    assert str(far.resolve()) in {s.path for s in samples}


def test_a_directory_is_named_as_such(tmp_path):
    (tmp_path / "clips.mp4").mkdir()
    csv = _listing(tmp_path, _ROWS)
    with csv.open("a") as fh:
        fh.write("clips.mp4,happy,ann\n")
    msg = _error(csv)
    assert f"row 7 (line 8): {tmp_path.resolve() / 'clips.mp4'} is a directory" in msg, msg
    assert "list regular media files only" in msg


def test_a_fifo_is_named_as_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.mp4")
    csv = _listing(tmp_path, _ROWS)
    with csv.open("a") as fh:
        fh.write("pipe.mp4,happy,ann\n")
    msg = _error(csv)
    assert f"{tmp_path.resolve() / 'pipe.mp4'} is a FIFO, not a regular file" in msg, msg


def _modalities(tmp_path: Path, ext: str, **data: Any) -> list[str]:
    folder = tmp_path / ext
    touch(folder, *(f"p{i}.{ext}" for i in range(len(_ROWS))), data=b"media")
    csv = folder / "list.csv"
    lines = [f"p{i}.{ext},{label},{who}" for i, (label, who) in enumerate(_ROWS)]
    csv.write_text("path,label,speaker\n" + "\n".join(lines) + "\n")
    root = tmp_path / f"raw-{ext}-{len(data)}"
    cfg = {"dataset": "folder", "root": str(root), "folder": {"csv": str(csv)}, **data}
    run(make_params(cfg))
    return json.loads((root / "dataset.json").read_text())["modalities"]


def test_a_folder_of_audio_files_is_an_audio_only_dataset(tmp_path):
    assert _modalities(tmp_path, "wav") == ["audio"]
    assert _modalities(tmp_path, "FLAC") == ["audio"]
    assert _modalities(tmp_path, "mp4") == ["audio", "video"]
    assert _modalities(tmp_path, "mp4", modality="audio") == ["audio"]  # videos' sound only


def _with_column(csv: Path, column: str, values: list[str]) -> Path:
    """Add a column to a listing written by `_listing`."""
    lines = csv.read_text().splitlines()
    rows = [f"{line},{v}" for line, v in zip(lines[1:], values)]
    csv.write_text("\n".join([f"{lines[0]},{column}", *rows]) + "\n")
    return csv


def test_a_sex_column_lands_in_the_index_and_balances_the_folds(tmp_path):
    """6 speakers (3 f, 3 m) in a CSV `sex` column: index.csv has it; 3 folds of one of each."""
    speakers = ["ann", "bea", "cat", "dan", "eli", "fox"]
    rows = [(label, s) for label in ("happy", "sad") for s in speakers]
    sex = {"ann": "F", "bea": "f", "cat": "f", "dan": "M", "eli": "m", "fox": " m"}
    csv = _with_column(_listing(tmp_path / "videos", rows), "sex", [sex[s] for _, s in rows])
    root = tmp_path / "raw"
    params = make_params({"dataset": "folder", "root": str(root), "folder": {"csv": str(csv)}})
    run(params)
    index = pd.read_csv(root / "index.csv", dtype=str)
    assert index.set_index("clip_id")["sex"].to_dict() == {
        f"p{i}": sex[s].strip() for i, (_, s) in enumerate(rows)
    }
    for seed in range(3):
        summary = make_splits(
            index, protocol="speaker_kfold", n_folds=3, default_folds=5, val_fraction=0.2,
            seed=seed,
        )[1]  # fmt: skip
        assert summary["stratify"] == "sex"
        assert [f["test_groups"] for f in summary["folds"].values()] == [{"f": 1, "m": 1}] * 3


def test_a_speaker_with_two_groups_in_the_csv_is_named(tmp_path):
    csv = _with_column(_listing(tmp_path, _ROWS), "group", ["a", "b", "a", "b", "b", "a"])
    msg = _error(csv)  # ann is 'a' on row 1, 'b' on row 4
    assert "speaker 'ann' has group values ['a', 'b']" in msg, msg
    assert "give every clip of a speaker the same group" in msg

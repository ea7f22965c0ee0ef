"""Which files a call scores, their rows and the CSV/JSONL output (pure parts; the command
itself on real videos is in test_command.py)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from aver.errors import ConfigError, DataError
from aver.predict.batch import (
    RowWriter,
    csv_record,
    failed_row,
    media_files,
    output_format,
    prediction_row,
)
from aver.predict.result import Prediction, WindowResult

CLASSES = ["neutral", "happy"]


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_media_files_expands_directories_sorted(tmp_path):
    for name in ["b.mp4", "a.MOV", "notes.txt", "sub/c.flv"]:
        _touch(tmp_path / "d" / name)
    one = _touch(tmp_path / "one.mkv")
    d = tmp_path / "d"
    assert media_files([d, one]) == [d / "a.MOV", d / "b.mp4", one]
    assert media_files([d], recursive=True) == [d / "a.MOV", d / "b.mp4", d / "sub" / "c.flv"]
    # a file named on the command line is kept whatever it is (its row says what went wrong)
    assert media_files([d / "notes.txt", tmp_path / "absent.mp4", one, one]) == [
        d / "notes.txt", tmp_path / "absent.mp4", one,
    ]  # fmt: skip


def test_a_directory_without_media_is_a_clear_error(tmp_path):
    _touch(tmp_path / "d" / "sub" / "x.mp4")
    with pytest.raises(DataError, match=r"no media files.*subdirectories not searched") as err:
        media_files([tmp_path / "d"])
    assert "--recursive" in str(err.value)
    assert media_files([tmp_path / "d"], recursive=True) == [tmp_path / "d" / "sub" / "x.mp4"]


def test_output_format_by_name():
    assert output_format("r.csv") == ".csv" and output_format("out/R.JSONL") == ".jsonl"
    with pytest.raises(ConfigError, match=r"results\.csv or results\.jsonl"):
        output_format("results.json")


def _pred() -> Prediction:
    windows = [
        WindowResult(0.0, 2.0, np.array([0.2, 0.8]), ("audio", "video")),
        WindowResult(1.0, 3.0, None, ()),
    ]
    return Prediction(
        video="a.mp4", classes=CLASSES, probs=np.array([0.2, 0.8]), detection_rate=0.9,
        duration_s=3.0, model="m.pt", windows=windows, modalities=("audio", "video"),
        notes=["1 of 2 windows had no face and were not scored (the model needs one)"],
    )  # fmt: skip


def test_rows_of_a_prediction_and_a_failure():
    row = prediction_row(_pred())
    assert row["path"] == "a.mp4" and row["label"] == "happy" and row["error"] == ""
    assert row["probabilities"] == {"neutral": 0.2, "happy": 0.8}
    assert row["n_windows"] == 1  # windows scored
    assert row["modalities"] == ["audio", "video"] and len(row["notes"]) == 1
    bad = failed_row("b.mp4", "b.mp4: file not found Fix: check the path")
    assert bad["label"] == "" and bad["probabilities"] == {} and bad["error"].endswith("path")
    assert set(bad) == set(row)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_row_writer_writes_atomically(tmp_path, suffix):
    target = tmp_path / f"results{suffix}"
    rows = [prediction_row(_pred()), failed_row("b.mp4", "b.mp4: broken, with a comma")]
    with RowWriter(target, CLASSES) as writer:
        for row in rows:
            writer.write(row)
        assert not target.exists()  # renamed onto its name when the call ends
    if suffix == ".jsonl":
        assert [json.loads(line) for line in target.read_text().splitlines()] == rows
    else:
        with open(target, newline="") as f:
            got = list(csv.DictReader(f))
        assert list(got[0]) == list(csv_record(rows[0], CLASSES))
        assert got[0]["p_happy"] == "0.800000" and got[0]["modalities"] == "audio+video"
        assert got[1]["error"] == "b.mp4: broken, with a comma" and got[1]["p_happy"] == ""
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left


def test_row_writer_leaves_nothing_when_the_call_fails(tmp_path):
    target = tmp_path / "results.csv"
    with pytest.raises(KeyboardInterrupt), RowWriter(target, CLASSES) as writer:
        writer.write(prediction_row(_pred()))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []

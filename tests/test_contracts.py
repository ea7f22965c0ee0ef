"""The files passed between stages: round trips, and a clear error for each malformed file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from aver.contracts import (
    FACE_INDEX,
    FEATURE_INDEX,
    MANIFEST,
    RAW_INDEX,
    DatasetInfo,
    feature_modalities,
    read_feature_meta,
    read_feature_stats,
    write_feature_meta,
    write_feature_stats,
)
from aver.errors import DataError


def _row(contract, **values):
    return {c: values.get(c, f"{c}-x") for c in contract.columns}


def test_raw_index_round_trip_keeps_text(tmp_path: Path):
    frame = pd.DataFrame(
        [
            _row(RAW_INDEX, clip_id="NA", path="a/NA.mp4", label="neutral", speaker="01")
            | {"intensity": ""},
        ]
    )
    RAW_INDEX.write(tmp_path, frame[["intensity", *RAW_INDEX.columns]])
    back = RAW_INDEX.read(tmp_path)
    assert list(back.columns) == [*RAW_INDEX.columns, "intensity"]  # contract columns first
    assert back.iloc[0].to_dict() == frame.iloc[0].to_dict()  # "NA", "01", "" stay text


def test_manifest_face_and_feature_index_round_trips(tmp_path: Path):
    cases = [
        (MANIFEST, _row(MANIFEST, clip_id="01", n_frames=50, fps=25.0)),
        (FACE_INDEX, _row(FACE_INDEX, clip_id="01", shard="shard-00000", offset=0)),
        (FEATURE_INDEX, _row(FEATURE_INDEX, clip_id="01", label_idx=3, speaker="007", row=2)),
    ]
    for i, (contract, row) in enumerate(cases):
        directory = tmp_path / str(i)
        directory.mkdir()
        contract.write(directory, pd.DataFrame([row]))
        back = contract.read(directory).iloc[0].to_dict()
        assert back == row, contract.name


def test_dataset_info_round_trip(tmp_path: Path):
    info = DatasetInfo("demo", ["angry", "happy"], n_folds=4, n_clips=10)
    info.write(tmp_path)
    assert json.loads((tmp_path / "dataset.json").read_text()) == {
        "name": "demo", "classes": ["angry", "happy"], "n_folds": 4, "n_clips": 10,
        "modalities": ["audio", "video"],
    }  # fmt: skip
    assert DatasetInfo.read(tmp_path) == info and info.has_video


def test_dataset_info_modalities(tmp_path: Path):
    DatasetInfo("wavs", ["a", "b"], modalities=["audio"]).write(tmp_path)
    assert not DatasetInfo.read(tmp_path).has_video
    # written before the key: both
    (tmp_path / "dataset.json").write_text('{"name": "old", "classes": ["a", "b"]}')
    assert DatasetInfo.read(tmp_path).modalities == ["audio", "video"]
    (tmp_path / "dataset.json").write_text('{"name": "x", "classes": ["a"], "modalities": ["x"]}')
    with pytest.raises(DataError, match="modalities must be a non-empty list"):
        DatasetInfo.read(tmp_path)
    assert feature_modalities({}) == ["audio", "video"]
    assert feature_modalities({"modalities": ["audio"]}) == ["audio"]


def test_manifest_reads_an_absent_stream_as_empty(tmp_path: Path):
    row = _row(MANIFEST, clip_id="a", audio="audio/a.wav", video="")
    MANIFEST.write(tmp_path, pd.DataFrame([row]))
    assert MANIFEST.read(tmp_path).iloc[0]["video"] == ""


def test_feature_meta_and_stats_round_trip(tmp_path: Path):
    meta = {"classes": ["a"], "n_folds": 2, "protocol": "random", "leaky": True, "arrays": {}}
    write_feature_meta(tmp_path, meta)
    assert read_feature_meta(tmp_path) == meta
    write_feature_stats(tmp_path, {"0": {"audio_mean": [1.0]}, "1": {"audio_mean": [2.0]}})
    assert read_feature_stats(tmp_path) == {0: {"audio_mean": [1.0]}, 1: {"audio_mean": [2.0]}}


@pytest.mark.parametrize(
    ("contract", "text", "message"),
    [
        (RAW_INDEX, "clip_id,path,label\na,a.mp4,x\n", r"raw index lacks columns \['speaker'\]"),
        (RAW_INDEX, "clip_id,path,label,speaker\na,a,x,1\na,b,x,1\n", "duplicate clip_id"),
        (MANIFEST, "clip_id,audio\n", r"extract manifest lacks columns \['video'"),
        (FACE_INDEX, 'clip_id,shard\n"a,b\n', "unreadable aligned-face index"),
        (FEATURE_INDEX, "clip_id,label\na,x\n", "feature index lacks columns"),
    ],
)
def test_malformed_tables_name_the_file_and_the_fix(tmp_path: Path, contract, text, message):
    contract.path(tmp_path).write_text(text)
    with pytest.raises(DataError, match=message) as err:
        contract.read(tmp_path)
    assert str(contract.path(tmp_path)) in str(err.value)
    assert contract.fix in str(err.value)


def test_missing_table_says_which_stage_to_run(tmp_path: Path):
    with pytest.raises(DataError, match="raw index not found") as err:
        RAW_INDEX.read(tmp_path)
    assert "dvc repro download" in str(err.value)


def test_a_reader_may_need_only_some_columns(tmp_path: Path):
    MANIFEST.path(tmp_path).write_text("clip_id,audio\na,audio/a.wav\n")
    assert list(MANIFEST.read(tmp_path, need=("audio",))["audio"]) == ["audio/a.wav"]


def test_writer_refuses_a_table_without_the_contract_columns(tmp_path: Path):
    with pytest.raises(ValueError, match="lacks columns"):
        MANIFEST.write(tmp_path, pd.DataFrame({"clip_id": ["a"]}))


@pytest.mark.parametrize(
    "text",
    ['{"name": "demo"}', '{"name": "demo", "classes": []}', "not json", '["a"]'],
)
def test_malformed_dataset_json(tmp_path: Path, text: str):
    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(DataError, match=r"dataset\.json") as err:
        DatasetInfo.read(tmp_path)
    assert "dvc repro download" in str(err.value)


def test_malformed_feature_meta_and_stats(tmp_path: Path):
    (tmp_path / "meta.json").write_text('{"classes": ["a"]}')
    with pytest.raises(DataError, match=r"corrupt cache metadata.*n_folds") as err:
        read_feature_meta(tmp_path)
    assert "meta.json" in str(err.value)
    (tmp_path / "stats.json").write_text('{"fold": {}}')
    with pytest.raises(DataError, match="corrupt cache metadata") as err:
        read_feature_stats(tmp_path)
    assert "stats.json" in str(err.value)
    with pytest.raises(DataError, match="cache file missing"):
        read_feature_meta(tmp_path / "nowhere")

"""Cache format: columns, shards, atomic resume, failures, clear errors on damage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aver.errors import DataError
from aver.features import FeatureCache, make_loader
from aver.features import pipeline as cache_pipeline
from tests.features.conftest import build_cache, make_params, standard_clips, write_inputs


def test_layout_index_and_meta(standard_cache: Path):
    index = pd.read_csv(standard_cache / "index.csv", dtype=str)
    assert list(index.columns[:7]) == [
        "clip_id", "label", "label_idx", "speaker", "fold", "shard", "row",
    ]  # fmt: skip
    assert "intensity" in index.columns and "path" not in index.columns
    assert len(index) == 24 and index["clip_id"].is_unique
    assert sorted(index["shard"].unique()) == [f"shard-{i:05d}" for i in range(5)]
    meta = json.loads((standard_cache / "meta.json").read_text())
    assert meta["classes"] == ["angry", "happy"] and meta["n_folds"] == 3
    assert meta["audio"]["n_bins"] == 32 and meta["video"]["n_frames"] == 10
    assert meta["leaky"] is False and meta["window_s"] == 1.0
    video = np.load(standard_cache / "shard-00000" / "video.npy", mmap_mode="r")
    assert isinstance(video, np.memmap) and video.shape == (5, 10, 16, 16, 3)
    assert video.dtype == np.uint8
    assert not list(standard_cache.parent.glob("*.partial"))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_truncated_shard_names_the_file(standard_cache: Path, tmp_path: Path):
    out = _copy(standard_cache, tmp_path / "c")
    bad = out / "shard-00001" / "video.npy"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as err:
        FeatureCache(out)
    assert str(bad) in str(err.value) and "rerun" in str(err.value)


def test_garbage_and_missing_shards_name_the_file(standard_cache: Path, tmp_path: Path):
    out = _copy(standard_cache, tmp_path / "c")
    bad = out / "shard-00002" / "audio.npy"
    bad.write_bytes(b"not an npy file at all" * 10)
    with pytest.raises(DataError, match="corrupt") as err:
        FeatureCache(out)
    assert str(bad) in str(err.value)
    shutil.rmtree(out / "shard-00002")
    with pytest.raises(DataError, match="missing") as err:
        FeatureCache(out)
    assert "shard-00002" in str(err.value)


def test_missing_stats_names_the_file(standard_cache: Path, tmp_path: Path):
    out = _copy(standard_cache, tmp_path / "c")
    (out / "stats.json").unlink()
    with pytest.raises(DataError, match=r"stats\.json"):
        FeatureCache(out)


def test_unreadable_wav_is_a_recorded_failure(tmp_path: Path):
    write_inputs(tmp_path, standard_clips())
    (tmp_path / "interim" / "audio" / "sp02-happy-1.wav").write_bytes(b"RIFF garbage")
    out = cache_pipeline.run(make_params(tmp_path))
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures["clip_id"]) == ["sp02-happy-1"]
    assert failures["stage"].tolist() == ["cache"]
    cache = FeatureCache(out)
    assert "sp02-happy-1" not in set(cache.index["clip_id"]) and len(cache) == 23
    for fold in range(cache.n_folds):  # every loader still works around the hole
        for _ in make_loader(cache, fold, "test", 4, train=False):
            pass


def test_clips_missing_upstream_are_skipped(tmp_path: Path):
    write_inputs(tmp_path, standard_clips())
    faces_index = tmp_path / "faces" / "index.csv"
    frame = pd.read_csv(faces_index)
    frame[frame["clip_id"] != "sp01-angry-0"].to_csv(faces_index, index=False)
    out = cache_pipeline.run(make_params(tmp_path))
    index = pd.read_csv(out / "index.csv")
    assert "sp01-angry-0" not in set(index["clip_id"]) and len(index) == 23
    assert pd.read_csv(out / "failures.csv").empty


def test_interrupted_run_resumes_finished_shards(tmp_path: Path, monkeypatch):
    write_inputs(tmp_path, standard_clips())
    params = make_params(tmp_path)
    real = cache_pipeline.cut_windows
    calls: list[int] = []

    def interrupt_at_clip_12(*args, **kwargs):
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_pipeline, "cut_windows", interrupt_at_clip_12)
    with pytest.raises(KeyboardInterrupt):
        cache_pipeline.run(params)
    assert not (tmp_path / "features").exists()  # nothing under the final name yet
    calls.clear()
    monkeypatch.setattr(
        cache_pipeline, "cut_windows", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    out = cache_pipeline.run(params)
    assert len(calls) == 24 - 10  # shards 0 and 1 (5 clips each) were kept
    fresh = build_cache(tmp_path / "fresh", standard_clips())
    for name in ("audio", "video", "video_times"):
        a = np.load(out / "shard-00003" / f"{name}.npy")
        b = np.load(fresh / "shard-00003" / f"{name}.npy")
        np.testing.assert_array_equal(a, b)
    assert (out / "stats.json").read_text() == (fresh / "stats.json").read_text()

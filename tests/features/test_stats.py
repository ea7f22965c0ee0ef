"""Normalisation statistics come from each fold's training clips only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aver.features import FeatureCache
from tests.features.conftest import build_cache, standard_clips


def _stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())["folds"]


def test_stats_ignore_a_test_speaker_with_extreme_values(tmp_path: Path):
    normal = build_cache(tmp_path / "normal", standard_clips())
    extreme = build_cache(tmp_path / "extreme", standard_clips(extreme="sp04"))
    cache = FeatureCache(extreme)
    folds = {
        split: [f for f in range(cache.n_folds) if "sp04" in _speakers(cache, f, split)]
        for split in ("train", "val", "test")
    }
    (test_fold,) = folds["test"]
    # where sp04 is a test speaker the statistics are bit-identical to the normal run
    assert _stats(normal)[str(test_fold)] == _stats(extreme)[str(test_fold)]
    # where sp04 is a validation speaker too (not training)
    for f in folds["val"]:
        assert _stats(normal)[str(f)] == _stats(extreme)[str(f)]
    # and where it trains, the statistics move (the check can fail)
    assert folds["train"]
    for f in folds["train"]:
        n, e = _stats(normal)[str(f)], _stats(extreme)[str(f)]
        assert np.mean(e["video_std"]) > 1.5 * np.mean(n["video_std"])
        assert np.mean(e["audio_mean"]) > np.mean(n["audio_mean"]) + 1.0


def _speakers(cache: FeatureCache, fold: int, split: str) -> set[str]:
    speaker = cache.index.set_index("clip_id")["speaker"]
    return set(speaker[cache.split_ids(fold, split)])


def test_stats_equal_direct_computation_over_training_clips(standard_cache: Path):
    cache = FeatureCache(standard_cache)
    for fold in range(cache.n_folds):
        ids = cache.split_ids(fold, "train")
        rows = [cache.read(c) for c in ids]
        audio = np.concatenate([r["audio"][r["audio_mask"]] for r in rows]).astype(np.float64)
        video = np.concatenate([r["video"][r["video_mask"]] for r in rows]) / 255.0
        s = cache.fold_stats(fold)
        assert s.n_clips == len(ids)
        np.testing.assert_allclose(s.audio_mean, audio.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s.audio_std, audio.std(0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(s.video_mean, video.reshape(-1, 3).mean(0), atol=1e-6)
        np.testing.assert_allclose(s.video_std, video.reshape(-1, 3).std(0), atol=1e-6)

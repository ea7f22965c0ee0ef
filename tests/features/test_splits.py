"""Splits: speaker-disjoint folds, deterministic regardless of input order; random is leaky."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from aver.errors import ConfigError
from aver.features import FeatureCache
from aver.features.splits import assign_folds, carve_val, make_splits
from tests.features.conftest import build_cache, standard_clips


def test_every_fold_is_speaker_disjoint(standard_cache: Path):
    cache = FeatureCache(standard_cache)
    speaker = cache.index.set_index("clip_id")["speaker"]
    assert cache.n_folds == 3 and not cache.leaky
    tested = []
    for fold in range(cache.n_folds):
        sets = {s: set(speaker[cache.split_ids(fold, s)]) for s in ("train", "val", "test")}
        assert all(sets.values()), (fold, sets)
        assert not sets["train"] & sets["val"]
        assert not sets["train"] & sets["test"]
        assert not sets["val"] & sets["test"]
        ids = [c for s in ("train", "val", "test") for c in cache.split_ids(fold, s)]
        assert sorted(ids) == sorted(cache.index["clip_id"])  # every clip once per fold
        tested += sorted(sets["test"])
    assert sorted(tested) == sorted(set(speaker))  # each speaker is tested in exactly one fold


def test_splits_identical_across_runs_with_shuffled_inputs(tmp_path: Path):
    clips = standard_clips()
    a = build_cache(tmp_path / "a", clips, order_seed=1)
    b = build_cache(tmp_path / "b", clips, order_seed=2)
    ia = pd.read_csv(a / "index.csv").drop(columns=["shard", "row"])
    ib = pd.read_csv(b / "index.csv").drop(columns=["shard", "row"])
    pd.testing.assert_frame_equal(ia, ib)
    assert (
        json.loads((a / "meta.json").read_text())["splits"]
        == json.loads((b / "meta.json").read_text())["splits"]
    )
    assert (a / "stats.json").read_text() == (b / "stats.json").read_text()
    assert list(ia["clip_id"]) == sorted(ia["clip_id"])


def test_seed_changes_assignment_and_folds_are_balanced():
    speakers = [f"a{i:02d}" for i in range(24)]
    f0 = assign_folds(speakers, 6, seed=0)
    assert f0 == assign_folds(list(reversed(speakers)), 6, seed=0)
    assert sorted(pd.Series(f0).value_counts()) == [4] * 6
    assert f0 != assign_folds(speakers, 6, seed=1)


def test_validation_carved_from_training_speakers():
    train = ["b", "a", "c", "d"]
    val = carve_val(train, 0.01, seed=0, fold=0)
    assert len(val) == 1 and set(val) <= set(train)  # at least one speaker
    assert len(carve_val(train, 0.99, seed=0, fold=0)) == 3  # at least one left to train on
    with pytest.raises(ConfigError):
        carve_val(["only"], 0.2, seed=0, fold=0)


def test_too_many_folds_is_a_config_error():
    clips = pd.DataFrame({"clip_id": ["x", "y"], "speaker": ["s1", "s2"]})
    with pytest.raises(ConfigError, match=r"cache\.n_folds"):
        make_splits(
            clips, protocol="speaker_kfold", n_folds=3, default_folds=3, val_fraction=0.2, seed=0
        )


def test_random_protocol_is_flagged_leaky(tmp_path: Path):
    out = build_cache(tmp_path, standard_clips(), protocol="random")
    cache = FeatureCache(out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["leaky"] is True and meta["protocol"] == "random" and cache.leaky
    assert cache.n_folds == 5
    test = cache.split_ids(0, "test")
    assert len(test) == round(0.2 * len(cache))  # the paper's 80/20 split over clips
    speaker = cache.index.set_index("clip_id")["speaker"]
    train_speakers = set(speaker[cache.split_ids(0, "train")])
    assert set(speaker[test]) & train_speakers  # speakers shared: that is the leak
    assert meta["splits"]["unit"] == "clip"

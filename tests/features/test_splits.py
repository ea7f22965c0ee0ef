"""Splits: speaker-disjoint folds, deterministic regardless of input order; random is leaky;
the datasets' standard folds balanced over the speakers' sex (RAVDESS, CREMA-D, a CSV column)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pandas as pd
import pytest

from aver.config import CacheConfig
from aver.datasets.base import Sample
from aver.datasets.cremad import CremadDataset, read_demographics
from aver.datasets.ravdess import RavdessDataset, ravdess_sample
from aver.errors import ConfigError, DataError
from aver.features import FeatureCache
from aver.features.pipeline import run
from aver.features.splits import (
    PROTOCOLS,
    assign_folds,
    carve_val,
    fold_speakers,
    make_splits,
    speaker_groups,
)
from tests.features.conftest import build_cache, make_params, standard_clips, write_inputs


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


def _frame(samples: list[Sample]) -> pd.DataFrame:
    """The raw index columns splits read: clip_id, speaker and the samples' meta columns."""
    return pd.DataFrame([{"clip_id": x.clip_id, "speaker": x.speaker, **x.meta} for x in samples])


def _folds(clips: pd.DataFrame, default_folds: int, seed: int = 0) -> dict[str, dict]:
    _, summary = make_splits(
        clips, protocol="speaker_kfold", n_folds=None, default_folds=default_folds,
        val_fraction=0.2, seed=seed,
    )  # fmt: skip
    return summary


def _ravdess(shuffle: int | None = None) -> pd.DataFrame:
    """Two clips of each of RAVDESS's 24 actors, named and parsed as the real files are."""
    root = Path("/data")
    names = [f"01-01-0{e}-01-01-01-{a:02d}.mp4" for a in range(1, 25) for e in (3, 5)]
    clips = _frame([ravdess_sample(root / f"Actor_{n[-6:-4]}" / n, root) for n in names])
    return clips if shuffle is None else clips.sample(frac=1, random_state=shuffle)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_ravdess_standard_folds_are_four_actors_two_men_two_women(seed):
    clips = _ravdess()
    summary = _folds(clips, RavdessDataset.n_folds, seed)
    assert summary["n_folds"] == 6 and summary["stratify"] == "sex"
    tested = []
    for info in summary["folds"].values():
        actors = info["test_speakers"]
        men = [a for a in actors if int(a) % 2 == 1]  # RAVDESS: odd actors are male
        assert len(actors) == 4 and len(men) == 2, actors
        assert info["test_groups"] == {"female": 2, "male": 2}
        tested += actors
    assert sorted(tested) == [f"{a:02d}" for a in range(1, 25)]


def test_folds_are_deterministic_and_seeded():
    a = _folds(_ravdess(), 6)
    assert a == _folds(_ravdess(shuffle=3), 6)  # row order does not matter
    assert a["folds"] != _folds(_ravdess(), 6, seed=1)["folds"]


def test_odd_counts_stay_within_one_actor_per_sex():
    """7 men, 4 women over 3 folds: each fold's men and women within one of the others'."""
    clips = _ravdess()
    clips = clips[clips["speaker"].astype(int) <= 11].reset_index(drop=True)  # 01..11
    summary = _folds(clips, 3)
    counts = [info["test_groups"] for info in summary["folds"].values()]
    for sex in ("male", "female"):
        per = [c.get(sex, 0) for c in counts]
        assert max(per) - min(per) <= 1, (sex, counts)
    sizes = [len(info["test_speakers"]) for info in summary["folds"].values()]
    assert max(sizes) - min(sizes) <= 1


def test_cremad_standard_folds_by_actor_balanced_over_sex(shared_dir: Path):
    table = shared_dir / "data" / "cremad" / "VideoDemographics.csv"
    if not table.is_file():
        pytest.skip(f"{table} is absent")
    people = read_demographics(table)
    clips = _frame(
        [
            Sample(f"{actor}_{s}", f"{actor}_{s}.flv", "anger", actor, {"sex": p["sex"]})
            for actor, p in people.items()
            for s in ("DFA", "IEO")
        ]
    )
    summary = _folds(clips, CremadDataset.n_folds)
    assert summary["n_folds"] == 5 and summary["stratify"] == "sex"
    folds = summary["folds"].values()
    assert sorted(len(f["test_speakers"]) for f in folds) == [18, 18, 18, 18, 19]  # 91 actors
    for sex in ("male", "female"):
        per = [f["test_groups"][sex] for f in folds]
        assert max(per) - min(per) <= 1, (sex, per)
    assert sum(f["test_groups"]["male"] for f in folds) == sum(
        p["sex"] == "male" for p in people.values()
    )


def test_group_column_wins_and_unknown_values_form_their_own_group():
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(8)],
            "speaker": [f"s{i}" for i in range(8)],
            "sex": ["m", "f"] * 4,
            "group": ["a", "a", "b", "b", "", "", "a", "b"],
        }
    )
    summary = _folds(clips, 2)
    assert summary["stratify"] == "group"
    assert [f["test_groups"] for f in summary["folds"].values()] == [
        {"a": 2, "b": 1, "unknown": 1},
        {"a": 1, "b": 2, "unknown": 1},
    ]


def test_a_speaker_with_two_values_is_a_data_error():
    with pytest.raises(DataError, match=r"speaker 's1' has sex values \['f', 'm'\]"):
        speaker_groups(["s1", "s1", "s2"], ["M", "f", "f"], "sex")
    assert speaker_groups(["s1", "s1"], [" Male", ""], "sex") == {"s1": "male"}  # one known


def test_without_an_attribute_folds_are_as_before():
    clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(10)], "speaker": list("abcdeabcde")})
    summary = _folds(clips, 5)
    assert summary["stratify"] is None
    expected = assign_folds("abcde", 5, seed=0)
    for k, info in summary["folds"].items():
        assert info["test_speakers"] == [s for s, f in expected.items() if f == int(k)]
        assert "test_groups" not in info


def test_random_protocol_is_not_stratified():
    clips = _ravdess()
    _, summary = make_splits(
        clips, protocol="random", n_folds=None, default_folds=6, val_fraction=0.2, seed=0
    )
    assert summary["stratify"] is None and summary["n_folds"] == 5


def test_protocol_registry_is_what_the_config_accepts():
    assert set(get_args(CacheConfig.model_fields["protocol"].annotation)) == set(PROTOCOLS)


def test_cache_records_the_balanced_folds_and_their_test_speakers(tmp_path: Path):
    """A sex column in the raw index: meta.json names it and each fold's test speakers."""
    write_inputs(tmp_path, standard_clips())
    raw = pd.read_csv(tmp_path / "raw" / "index.csv", dtype=str)
    raw["sex"] = raw["speaker"].map(lambda s: "male" if int(s[2:]) % 2 else "female")
    raw.to_csv(tmp_path / "raw" / "index.csv", index=False)
    cache = FeatureCache(run(make_params(tmp_path)))
    assert cache.stratify == "sex"
    for k, info in cache.meta["splits"]["folds"].items():
        assert info["test_groups"] == {"female": 1, "male": 1}
        assert info["test_speakers"] == fold_speakers(cache.index, int(k))

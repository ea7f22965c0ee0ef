"""The loader yields the contract's model batch, normalised; augmentation only when training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aver.features import FeatureCache, batch_from_arrays, make_loader
from aver.features.augment import AugmentConfig, augment_video, pick_dropped, spec_augment
from aver.features.loader import EpochSampler, ShardSampler


def _all(loader) -> list[dict]:
    return list(loader)


def _equal(a: list[dict], b: list[dict]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x["clip_id"] != y["clip_id"]:
            return False
        for k in x:
            if k != "clip_id" and not torch.equal(x[k], y[k]):
                return False
    return True


@pytest.fixture(scope="module")
def cache(standard_cache: Path) -> FeatureCache:
    return FeatureCache(standard_cache)


def test_batch_follows_the_contract(cache: FeatureCache):
    batch = next(iter(make_loader(cache, 0, "train", 4, train=True)))
    b = 4
    assert batch["audio"].shape == (b, 97, 32) and batch["audio"].dtype == torch.float32
    assert batch["audio_mask"].shape == (b, 97) and batch["audio_mask"].dtype == torch.bool
    assert batch["audio_times"].shape == (b, 97) and batch["audio_times"].dtype == torch.float32
    assert batch["video"].shape == (b, 10, 3, 16, 16) and batch["video"].dtype == torch.float32
    assert batch["video_mask"].shape == (b, 10) and batch["video_mask"].dtype == torch.bool
    assert batch["video_times"].shape == (b, 10)
    assert batch["label"].dtype == torch.long and batch["label"].shape == (b,)
    assert len(batch["clip_id"]) == b
    for i, cid in enumerate(batch["clip_id"]):
        assert int(batch["label"][i]) == ["angry", "happy"].index(cid.split("-")[1])
    assert set(batch["clip_id"]) <= set(cache.split_ids(0, "train"))


def test_eval_is_normalised_with_the_folds_training_stats(cache: FeatureCache):
    for fold in range(cache.n_folds):
        batch = next(iter(make_loader(cache, fold, "test", 8, train=False)))
        stats = cache.fold_stats(fold)
        raw = cache.read(batch["clip_id"][0])
        a = (raw["audio"] - stats.audio_mean) / stats.audio_std
        a[~raw["audio_mask"]] = 0
        np.testing.assert_allclose(batch["audio"][0].numpy(), a, rtol=1e-5, atol=1e-5)
        v = (raw["video"] / 255.0 - stats.video_mean) / stats.video_std
        v[~raw["video_mask"]] = 0
        np.testing.assert_allclose(batch["video"][0].numpy(), v.transpose(0, 3, 1, 2), atol=1e-5)
        assert batch["clip_id"] == cache.split_ids(fold, "test")[:8]  # eval keeps order


def test_augmentation_off_in_eval_on_in_train(cache: FeatureCache):
    ev = make_loader(cache, 0, "val", 2, train=False)
    first = _all(ev)
    assert _equal(first, _all(ev))  # a second pass over the same loader
    assert _equal(first, _all(make_loader(cache, 0, "val", 2, train=False, seed=7)))

    tr = make_loader(cache, 0, "train", 4, train=True, seed=3)
    epoch1, epoch2 = _all(tr), _all(tr)
    assert not _equal(epoch1, epoch2)  # new order and new augmentation each epoch
    again = make_loader(cache, 0, "train", 4, train=True, seed=3)
    assert _equal(epoch1, _all(again))  # but reproducible from the seed
    again.sampler.set_epoch(1)
    assert _equal(epoch2, _all(again))  # and from (seed, epoch): exact resume
    assert not _equal(epoch1, _all(make_loader(cache, 0, "train", 4, train=True, seed=4)))

    # same clips through the training loader differ from their eval version (augmented)
    no_aug = _all(make_loader(cache, 0, "train", 4, train=True, seed=3, augment=False))
    assert [b["clip_id"] for b in no_aug] == [b["clip_id"] for b in epoch1]
    assert not torch.equal(no_aug[0]["video"], epoch1[0]["video"])
    assert not torch.equal(no_aug[0]["audio"], epoch1[0]["audio"])
    for x, y in zip(no_aug, epoch1):  # masks, times and labels are never augmented
        for k in ("audio_mask", "video_mask", "audio_times", "video_times", "label"):
            assert torch.equal(x[k], y[k])


def test_workers_give_the_same_batches(cache: FeatureCache):
    single = _all(make_loader(cache, 1, "train", 4, train=True, seed=5))
    multi = _all(make_loader(cache, 1, "train", 4, train=True, seed=5, num_workers=2))
    assert _equal(single, multi)


def test_workers_persist_across_epochs_and_follow_set_epoch(cache: FeatureCache):
    single = make_loader(cache, 1, "train", 4, train=True, seed=5)
    multi = make_loader(cache, 1, "train", 4, train=True, seed=5, num_workers=2)
    first = _all(multi)
    workers = multi._iterator  # kept alive for the next pass
    assert workers is not None
    assert _equal(first, _all(single))
    assert _equal(_all(multi), _all(single))  # epoch 2 on both, other order and augmentation
    assert multi._iterator is workers
    multi.sampler.set_epoch(0)
    assert _equal(_all(multi), first)


def test_batch_from_arrays_matches_the_eval_loader(cache: FeatureCache):
    batch = next(iter(make_loader(cache, 2, "test", 3, train=False)))
    ids = batch["clip_id"]
    built = batch_from_arrays(
        [cache.read(c) for c in ids],
        cache.fold_stats(2),
        labels=[cache.label_idx(c) for c in ids],
        clip_ids=ids,
    )
    assert _equal([batch], [built])


def test_augment_ops_change_content_not_shape():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    cfg = AugmentConfig(flip_p=1.0, max_rotate_deg=0, max_scale=0, max_shift=0)
    np.testing.assert_array_equal(augment_video(video, rng, cfg), video[:, :, ::-1])
    audio = np.ones((50, 16), np.float32)
    mask = np.ones(50, bool)
    spec_cfg = AugmentConfig(time_masks=1, freq_masks=1, max_time_frac=0.2, max_freq_frac=0.25)
    zeroed = [
        (spec_augment(audio, mask, np.random.default_rng(s), spec_cfg) == 0).sum()
        for s in range(20)
    ]
    assert max(zeroed) > 0
    assert max(zeroed) <= 10 * 16 + 4 * 50  # bounded by the widest masks


@pytest.mark.parametrize("n", [1, 7, 8])
def test_shard_sampler_splits_each_epoch_over_ranks(n: int):
    inner = EpochSampler(n, shuffle=True, augment=True, seed=3)
    shards = [ShardSampler(inner, r, 3) for r in range(3)]
    for epoch in (0, 5):
        inner.set_epoch(epoch)
        full = list(inner)
        parts = []
        for s in shards:
            s.set_epoch(epoch)
            parts.append(list(s))
        assert all(len(p) == len(s) == -(-n // 3) for p, s in zip(parts, shards))
        interleaved = [x for group in zip(*parts) for x in group]
        assert interleaved[:n] == full  # the epoch's order (and augment seeds), dealt out
        assert set(interleaved[n:]) <= set(full)  # padding repeats clips


def test_sharded_loader_keeps_the_global_batch(cache: FeatureCache):
    whole = make_loader(cache, 0, "train", 4, train=True, seed=1)
    ranks = [
        make_loader(cache, 0, "train", 2, train=True, seed=1, rank=r, world_size=2)
        for r in range(2)
    ]
    assert [len(r) for r in ranks] == [len(whole)] * 2
    # step k of the two ranks together is step k of one process: the same clips
    for step, (a, b, one) in enumerate(zip(*ranks, whole)):
        assert len(a["clip_id"]) == len(b["clip_id"]) <= 2
        if len(one["clip_id"]) == 4:
            assert sorted(a["clip_id"] + b["clip_id"]) == sorted(one["clip_id"]), step


def _dropped(batch: dict) -> list[str | None]:
    """Per clip: which modality is all masked (None: both present)."""
    out: list[str | None] = []
    for i in range(len(batch["clip_id"])):
        gone = [m for m in ("audio", "video") if not batch[f"{m}_mask"][i].any()]
        assert len(gone) <= 1, "a clip lost both modalities"
        out.append(gone[0] if gone else None)
        if gone:
            assert not batch[gone[0]][i].any()  # its arrays are zero too
    return out


def test_modality_dropout_drops_one_modality_in_training_only(cache: FeatureCache):
    n = len(cache.split_ids(0, "train"))
    kw = {"train": True, "seed": 5, "modality_dropout": 0.5, "augment": False}
    drops = [d for b in make_loader(cache, 0, "train", n, **kw) for d in _dropped(b)]
    assert "audio" in drops and "video" in drops and None in drops
    again = [d for b in make_loader(cache, 0, "train", n, **kw) for d in _dropped(b)]
    assert again == drops  # same seed, same drops
    other = [d for b in make_loader(cache, 0, "train", n, **{**kw, "seed": 6}) for d in _dropped(b)]
    assert other != drops
    ev = make_loader(cache, 0, "val", 8, train=False, modality_dropout=0.9)
    assert all(d is None for b in ev for d in _dropped(b))  # never in evaluation
    none = make_loader(cache, 0, "train", n, train=True, seed=5)
    assert all(d is None for b in none for d in _dropped(b))  # off by default


def test_modality_dropout_leaves_the_other_augmentation_as_it_was(cache: FeatureCache):
    plain = _all(make_loader(cache, 0, "train", 4, train=True, seed=3))
    dropped = _all(make_loader(cache, 0, "train", 4, train=True, seed=3, modality_dropout=0.5))
    for x, y in zip(plain, dropped):
        assert x["clip_id"] == y["clip_id"]
        for i, gone in enumerate(_dropped(y)):
            for m in {"audio", "video"} - {gone}:
                assert torch.equal(x[m][i], y[m][i]) and torch.equal(
                    x[f"{m}_mask"][i], y[f"{m}_mask"][i]
                )


def test_pick_dropped_halves_between_audio_and_video():
    rng = np.random.default_rng(0)
    picks = [pick_dropped(rng, 0.5) for _ in range(4000)]
    assert abs(picks.count(None) / 4000 - 0.5) < 0.03
    assert abs(picks.count("audio") - picks.count("video")) < 200
    assert all(pick_dropped(rng, 0.0) is None for _ in range(100))

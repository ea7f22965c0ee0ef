"""Batches for the models: cached (or freshly computed) clip arrays -> normalised tensors.

One path for training, evaluation and prediction: `prepare_sample` (augment when given a
generator, normalise with a fold's stats, zero the padding) then `collate` (pad to the longest
clip, stack, masks). `make_loader` reads from a FeatureCache; `batch_from_arrays` builds one batch
from arrays made by `aver.features.window.clip_features` (predict).

Augmentation randomness comes from a per-sample seed drawn by the sampler from (seed, epoch), so
a run is reproducible for any num_workers and successive epochs differ. Modality dropout draws
from its own generator seeded by the same per-sample seed, so turning it on leaves the other
augmentation of every clip as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from aver import threads
from aver.errors import DataError
from aver.features.augment import (
    AugmentConfig,
    augment_video,
    drop_modality,
    pick_dropped,
    spec_augment,
)
from aver.features.stats import FoldStats, normalise_audio, normalise_video

if TYPE_CHECKING:
    from aver.features.cache import FeatureCache  # read by the stages; predict has arrays

NO_AUGMENT = -1


def prepare_sample(
    arrays: Mapping[str, np.ndarray],
    stats: FoldStats,
    rng: np.random.Generator | None = None,
    augment: AugmentConfig | None = None,
) -> dict[str, np.ndarray]:
    """One clip's cached arrays -> normalised float arrays (crops: video (Tv, 3, H, W)).

    Augments when `rng` is given (video before normalisation, SpecAugment after); padding
    positions are zero.
    """
    a_mask = np.asarray(arrays["audio_mask"], dtype=bool)
    v_mask = np.asarray(arrays["video_mask"], dtype=bool)
    video = np.asarray(arrays["video"])
    if rng is not None and video.ndim == 4:  # crops; embeddings have no geometry to jitter
        video = augment_video(video, rng, augment or AugmentConfig())
    v = normalise_video(video, stats)
    v[~v_mask] = 0.0
    a = normalise_audio(np.asarray(arrays["audio"]), stats)
    a[~a_mask] = 0.0
    if rng is not None:
        a = spec_augment(a, a_mask, rng, augment or AugmentConfig())
    return {
        "audio": a,
        "audio_mask": a_mask,
        "audio_times": np.asarray(arrays["audio_times"], dtype=np.float32),
        "video": v,
        "video_mask": v_mask,
        "video_times": np.asarray(arrays["video_times"], dtype=np.float32),
    }


def _pad(arrays: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(arrays), length, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out


def _pad_times(times: list[np.ndarray], length: int) -> np.ndarray:
    """Pad timestamps by continuing each clip's last step (keeps them increasing)."""
    out = np.zeros((len(times), length), np.float32)
    for i, t in enumerate(times):
        out[i, : len(t)] = t
        if len(t) < length:
            step = float(t[-1] - t[-2]) if len(t) > 1 else 0.0
            last = float(t[-1]) if len(t) else 0.0
            out[i, len(t) :] = last + step * np.arange(1, length - len(t) + 1)
    return out


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack prepared samples into the model batch (padding variable lengths, masks False)."""
    ta = max(len(s["audio"]) for s in samples)
    tv = max(len(s["video"]) for s in samples)
    batch = {
        "audio": torch.from_numpy(_pad([s["audio"] for s in samples], ta)),
        "audio_mask": torch.from_numpy(_pad([s["audio_mask"] for s in samples], ta)),
        "audio_times": torch.from_numpy(_pad_times([s["audio_times"] for s in samples], ta)),
        "video": torch.from_numpy(_pad([s["video"] for s in samples], tv)),
        "video_mask": torch.from_numpy(_pad([s["video_mask"] for s in samples], tv)),
        "video_times": torch.from_numpy(_pad_times([s["video_times"] for s in samples], tv)),
        "label": torch.tensor([int(s.get("label", -1)) for s in samples], dtype=torch.long),
        "clip_id": [str(s.get("clip_id", "")) for s in samples],
    }
    return batch


def batch_from_arrays(
    clips: Sequence[Mapping[str, np.ndarray]],
    stats: FoldStats,
    *,
    labels: Sequence[int] | None = None,
    clip_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One evaluation batch (no augmentation) from per-clip arrays, e.g. for `aver predict`."""
    samples = []
    for i, arrays in enumerate(clips):
        s: dict[str, Any] = dict(prepare_sample(arrays, stats))
        s["label"] = -1 if labels is None else labels[i]
        s["clip_id"] = "" if clip_ids is None else clip_ids[i]
        samples.append(s)
    return collate(samples)


class ClipDataset(Dataset):
    """Windows of the clips of one split read from the cache; items are keyed by (position,
    augment seed).

    `windows="all"`: an item per window of each clip (evaluation: a clip's windows are
    consecutive items, aggregated by `aver.inference.predict`); `"random"`: an item per clip,
    one of its windows drawn from the item's seed (training: each epoch a clip shows a
    window drawn afresh, so training sees every part of the clip).
    """

    def __init__(
        self,
        cache: FeatureCache,
        clip_ids: Sequence[str],
        stats: FoldStats,
        augment: AugmentConfig | None = None,
        modality_dropout: float = 0.0,
        windows: str = "all",
    ):
        if windows not in ("all", "random"):
            raise ValueError(f"windows must be 'all' or 'random', got {windows!r}")
        self.cache = cache
        self.clip_ids = list(clip_ids)
        self.stats = stats
        self.augment = augment
        self.modality_dropout = modality_dropout
        self.windows = windows
        self.items: list[tuple[str, int]] = (
            [(c, k) for c in self.clip_ids for k in range(cache.n_windows(c))]
            if windows == "all"
            else [(c, -1) for c in self.clip_ids]
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        i, seed = key if isinstance(key, tuple) else (key, NO_AUGMENT)
        clip_id, window = self.items[i]
        if window < 0:  # a window drawn from the item's seed (its own stream)
            n = self.cache.n_windows(clip_id)
            pick = np.random.default_rng([seed, 2]) if seed != NO_AUGMENT else None
            window = int(pick.integers(n)) if pick is not None else (n - 1) // 2
        use_aug = self.augment is not None and seed != NO_AUGMENT
        rng = np.random.default_rng(seed) if use_aug else None
        arrays = self.cache.read(clip_id, window)
        s: dict[str, Any] = dict(prepare_sample(arrays, self.stats, rng, self.augment))
        if seed != NO_AUGMENT and self.modality_dropout > 0:
            dropped = pick_dropped(np.random.default_rng([seed, 1]), self.modality_dropout)
            s = drop_modality(s, dropped) if dropped else s
        s["label"] = self.cache.label_idx(clip_id)
        s["clip_id"] = clip_id
        return s


class EpochSampler(Sampler):
    """Yields (position, augment seed); order and seeds derive from (seed, epoch)."""

    def __init__(self, n: int, *, shuffle: bool, augment: bool, seed: int = 0):
        self.n, self.shuffle, self.augment, self.seed = n, shuffle, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch `epoch` (exact resume); passes otherwise count up."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        seeds = rng.integers(0, 2**62, size=self.n) if self.augment else None
        for j, i in enumerate(order):
            yield int(i), int(seeds[j]) if seeds is not None else NO_AUGMENT


class ShardSampler(Sampler):
    """Rank `rank`'s share of each pass of `inner` (as DistributedSampler, over any sampler).

    Every rank walks the same pass (it depends only on seed and epoch), padded by wrapping
    round to a multiple of `world_size`, and keeps every `world_size`-th item from `rank`.
    """

    def __init__(self, inner: EpochSampler, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in 0..{world_size - 1}")
        self.inner, self.rank, self.world_size = inner, rank, world_size

    def __len__(self) -> int:
        return -(-len(self.inner) // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        items = list(self.inner)
        total = len(self) * self.world_size
        while len(items) < total:
            items += items[: total - len(items)]
        return iter(items[self.rank : total : self.world_size])


def make_loader(
    cache: FeatureCache,
    fold: int,
    split: str,
    batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    num_workers: int = 0,
    augment: bool | None = None,
    augment_config: AugmentConfig | None = None,
    modality_dropout: float = 0.0,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """DataLoader over a split of one fold, normalised with that fold's training stats.

    train=True shuffles, shows one random window of each clip per epoch, augments (unless
    augment=False) and drops a last batch of one clip (BatchNorm); train=False keeps cache
    order, no augmentation, every window of every clip once (a clip's windows consecutive,
    each with the clip's id: `aver.inference.predict` aggregates them per clip).
    modality_dropout p > 0 (train only): each clip loses its audio or its video with chance p
    (`aver.features.augment.pick_dropped`), whether or not the rest is augmented.
    world_size > 1 (DDP): this rank's shard of each pass (ShardSampler), batch_size clips a
    step per rank; step k of all ranks together holds the clips of step k of one process with
    batch_size * world_size (a last batch that would leave a rank one clip is dropped).
    num_workers > 0: that many worker processes, kept across epochs (persistent_workers).
    """
    ids = cache.split_ids(fold, split)
    if not ids:
        raise DataError(
            f"fold {fold} has no {split} clips",
            path=cache.path / "index.csv",
            fix="check cache.n_folds / cache.val_fraction against the number of speakers",
        )
    use_aug = train if augment is None else augment
    aug_cfg = (augment_config or AugmentConfig()) if use_aug else None
    drop = modality_dropout if train else 0.0
    windows = "random" if train else "all"
    dataset = ClipDataset(cache, ids, cache.fold_stats(fold), aug_cfg, drop, windows)
    # training draws a seed per item always: it picks the clip's window (and augments)
    passes = EpochSampler(len(dataset), shuffle=train, augment=train or use_aug, seed=seed)
    sampler = passes if world_size == 1 else ShardSampler(passes, rank, world_size)
    n = len(sampler)
    drop_last = train and n % batch_size == 1 and n > 1
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=threads.loader_worker_init if num_workers else None,
        persistent_workers=num_workers > 0,  # no new worker processes every epoch
    )

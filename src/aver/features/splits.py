"""Deterministic train/val/test splits: speaker-independent K-fold, or the paper's random split.

Assignments depend only on the sorted ids and the seed, never on file or row order. The unit
of assignment is the speaker (`speaker_kfold`) or the clip (`random`, leaky: a speaker appears in
train and test). Fold k's test set is the units of fold k; its validation set is carved from the
remaining units (`val_fraction`, at least one unit, at least one left for training).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from aver.errors import ConfigError

SPLITS = ("train", "val", "test")
RANDOM_FOLDS = 5  # the AVT-CA paper's 80/20 split is fold 0 of a 5-fold clip-level split


def split_column(fold: int) -> str:
    return f"split_{fold}"


def fold_count(protocol: str, n_folds: int | None, default_folds: int) -> int:
    """Folds the cache stage makes: `cache.n_folds`, else 5 (`random`) or the dataset's."""
    return n_folds or (RANDOM_FOLDS if protocol == "random" else default_folds)


def min_units(n_folds: int) -> int:
    """Fewest units (speakers or clips) that `n_folds` folds can split.

    Every fold needs a test unit and, for its validation set, at least 2 training units; units
    are dealt round-robin, so the largest fold holds ceil(n / k) of the n units.
    """
    n = n_folds
    while n - -(-n // n_folds) < 2:
        n += 1
    return n


def assign_folds(units: Iterable[str], n_folds: int, seed: int) -> dict[str, int]:
    """Map each unit to a fold: a seeded permutation of the sorted ids dealt round-robin."""
    ids = sorted({str(u) for u in units})
    if len(ids) < n_folds:
        raise ConfigError(
            f"{n_folds} folds need at least {n_folds} speakers/clips, found {len(ids)}",
            fix="lower cache.n_folds in params.yaml",
        )
    perm = np.random.default_rng(seed).permutation(len(ids))
    return {ids[p]: i % n_folds for i, p in enumerate(perm)}


def carve_val(train_units: Iterable[str], fraction: float, seed: int, fold: int) -> list[str]:
    """Validation units taken from a fold's training units (seeded, order-independent)."""
    ids = sorted({str(u) for u in train_units})
    if len(ids) < 2:
        raise ConfigError(
            f"fold {fold}: {len(ids)} training speakers/clips, need 2 to carve a validation set",
            fix="lower cache.n_folds or use a dataset with more speakers",
        )
    n_val = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    pick = np.random.default_rng([seed, fold, 1]).permutation(len(ids))[:n_val]
    return sorted(ids[i] for i in pick)


def make_splits(
    clips: pd.DataFrame,
    *,
    protocol: str,
    n_folds: int | None,
    default_folds: int,
    val_fraction: float,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fold and per-fold split columns for `clips` (needs clip_id, speaker), plus a summary.

    Returns a frame indexed by clip_id with `fold` and `split_<k>` in {train, val, test}, and a
    JSON-able summary (protocol, unit, leaky, n_folds, per-fold test/val speakers).
    """
    leaky = protocol == "random"
    unit_col = "clip_id" if leaky else "speaker"
    k = fold_count(protocol, n_folds, default_folds)
    units = clips[unit_col].astype(str)
    folds = assign_folds(units, k, seed)
    out = pd.DataFrame({"fold": units.map(folds).to_numpy()}, index=clips["clip_id"].astype(str))
    summary: dict[str, Any] = {
        "protocol": protocol,
        "unit": "clip" if leaky else "speaker",
        "leaky": leaky,
        "n_folds": k,
        "seed": seed,
        "val_fraction": val_fraction,
        "folds": {},
    }
    for fold in range(k):
        train_units = [u for u, f in folds.items() if f != fold]
        val = set(carve_val(train_units, val_fraction, seed, fold))
        split = np.where(out["fold"].to_numpy() == fold, "test", "train")
        split[units.isin(val).to_numpy() & (split == "train")] = "val"
        out[split_column(fold)] = split
        info: dict[str, Any] = {}
        if not leaky:
            info["test_speakers"] = sorted(u for u, f in folds.items() if f == fold)
            info["val_speakers"] = sorted(val)
        summary["folds"][str(fold)] = info
    return out, summary


def split_counts(frame: pd.DataFrame, n_folds: int) -> dict[str, dict[str, int]]:
    """Clips per split for each fold of a frame holding `split_<k>` columns."""
    return {
        str(k): {s: int((frame[split_column(k)] == s).sum()) for s in SPLITS}
        for k in range(n_folds)
    }

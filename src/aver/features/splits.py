"""Deterministic train/val/test splits: speaker-independent K-fold, or the paper's random split.

`PROTOCOLS` names the ways clips are dealt to folds (`cache.protocol`). Assignments depend only
on the sorted ids and the seed, never on file or row order. The unit of assignment is the
speaker (`speaker_kfold`) or the clip (`random`, leaky: a speaker appears in train and test).
`speaker_kfold` uses the dataset's standard fold count (`DatasetSpec.n_folds`: RAVDESS 6 folds
of 4 actors, CREMA-D 5, a folder CSV 5 or `cache.n_folds`) and, when the clips carry a speaker
attribute (a `group` or `sex` column, `SPEAKER_ATTRIBUTES`), deals the speakers of each
attribute value round-robin in turn, so every fold gets its share of each (RAVDESS: 2 men and
2 women per fold). Fold k's test set is the units of fold k; its validation set is carved from
the remaining units (`val_fraction`, at least one unit, at least one left for training).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from aver.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
RANDOM_FOLDS = 5  # the AVT-CA paper's 80/20 split is fold 0 of a 5-fold clip-level split
# index.csv columns folds are balanced over, first found wins: a folder CSV's `group` column,
# else the speaker's sex (RAVDESS: odd actors male; CREMA-D: VideoDemographics.csv; a CSV `sex`)
SPEAKER_ATTRIBUTES = ("group", "sex")
UNKNOWN = "unknown"  # the attribute value of a speaker whose clips leave it empty


@dataclass(frozen=True)
class Protocol:
    """How clips are dealt to folds."""

    name: str
    unit: Literal["speaker", "clip"]
    n_folds: int | None  # None: the dataset's standard count (or cache.n_folds)
    stratified: bool  # balanced over the speakers' attribute when the clips have one
    about: str

    @property
    def leaky(self) -> bool:
        """A clip-level split: a speaker's clips are in train and test."""
        return self.unit == "clip"


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "speaker_kfold", "speaker", None, True,
            "speaker-independent folds, the dataset's standard count, balanced over the "
            "speakers' sex or group when the dataset records it",
        ),
        Protocol(
            "random", "clip", RANDOM_FOLDS, False,
            "the AVT-CA paper's 80/20 clip-level split (fold 0 of 5); leaky",
        ),
    )
}  # fmt: skip


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(
            f"unknown cache.protocol {name!r}", fix=f"use one of {', '.join(PROTOCOLS)}"
        ) from None


def split_column(fold: int) -> str:
    return f"split_{fold}"


def fold_count(protocol: str, n_folds: int | None, default_folds: int) -> int:
    """Folds the cache stage makes: `cache.n_folds`, else the protocol's (5 for `random`) or
    the dataset's."""
    return n_folds or get_protocol(protocol).n_folds or default_folds


def stratify_column(columns: Iterable[str]) -> str | None:
    """The speaker attribute among `columns` that folds are balanced over (None: none)."""
    present = set(columns)
    return next((c for c in SPEAKER_ATTRIBUTES if c in present), None)


def speaker_groups(
    speakers: Iterable[str], values: Iterable[Any], column: str, path: str | Path | None = None
) -> dict[str, str]:
    """Speaker -> its attribute value (lower case; `UNKNOWN` when every clip leaves it empty).

    Raises DataError (naming `path`, the table they come from) when a speaker's clips disagree."""
    seen: dict[str, set[str]] = {}
    for speaker, value in zip(speakers, values):
        text = "" if value is None or value != value else str(value).strip().lower()
        seen.setdefault(str(speaker), set()).update({text} if text else set())
    mixed = {s: sorted(v) for s, v in seen.items() if len(v) > 1}
    if mixed:
        s, v = next(iter(sorted(mixed.items())))
        raise DataError(
            f"speaker {s!r} has {column} values {v} (and {len(mixed) - 1} more such speakers); "
            f"folds are balanced over {column}, one value per speaker",
            path=path,
            fix=f"give every clip of a speaker the same {column}",
        )
    return {s: next(iter(v)) if v else UNKNOWN for s, v in seen.items()}


def min_units(n_folds: int) -> int:
    """Fewest units (speakers or clips) that `n_folds` folds can split.

    Every fold needs a test unit and, for its validation set, at least 2 training units; units
    are dealt round-robin, so the largest fold holds ceil(n / k) of the n units.
    """
    n = n_folds
    while n - -(-n // n_folds) < 2:
        n += 1
    return n


def assign_folds(
    units: Iterable[str], n_folds: int, seed: int, groups: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Map each unit to a fold: a seeded permutation of the sorted ids dealt round-robin.

    With `groups` (unit -> attribute value), each value's units in turn (sorted by value), each
    permuted, the dealing carrying on where the last value stopped: every fold gets
    floor or ceil of each value's count and fold sizes differ by at most one."""
    ids = sorted({str(u) for u in units})
    if len(ids) < n_folds:
        raise ConfigError(
            f"{n_folds} folds need at least {n_folds} speakers/clips, found {len(ids)}",
            fix="lower cache.n_folds in params.yaml",
        )
    rng = np.random.default_rng(seed)
    if groups is None:
        order = [ids[p] for p in rng.permutation(len(ids))]
    else:
        order = []
        for value in sorted({groups[u] for u in ids}):
            members = [u for u in ids if groups[u] == value]
            order += [members[p] for p in rng.permutation(len(members))]
    return {u: i % n_folds for i, u in enumerate(order)}


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
    JSON-able summary (protocol, unit, leaky, n_folds, stratify: the attribute column or None,
    per-fold test/val speakers and, stratified, the test speakers per attribute value).
    """
    proto = get_protocol(protocol)
    leaky = proto.leaky
    unit_col = "clip_id" if leaky else "speaker"
    k = fold_count(protocol, n_folds, default_folds)
    units = clips[unit_col].astype(str)
    column = stratify_column(clips.columns) if proto.stratified else None
    groups = speaker_groups(clips["speaker"], clips[column], column) if column else None
    folds = assign_folds(units, k, seed, groups)
    out = pd.DataFrame({"fold": units.map(folds).to_numpy()}, index=clips["clip_id"].astype(str))
    summary: dict[str, Any] = {
        "protocol": protocol,
        "unit": proto.unit,
        "leaky": leaky,
        "n_folds": k,
        "stratify": column,
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
        if groups is not None:
            info["test_groups"] = group_counts(info["test_speakers"], groups)
        summary["folds"][str(fold)] = info
    return out, summary


def split_counts(frame: pd.DataFrame, n_folds: int) -> dict[str, dict[str, int]]:
    """Clips per split for each fold of a frame holding `split_<k>` columns."""
    return {
        str(k): {s: int((frame[split_column(k)] == s).sum()) for s in SPLITS}
        for k in range(n_folds)
    }


def group_counts(speakers: Iterable[str], groups: Mapping[str, str]) -> dict[str, int]:
    """Speakers per attribute value, values sorted."""
    values = [groups[s] for s in speakers]
    return {v: values.count(v) for v in sorted(set(values))}


def fold_speakers(index: pd.DataFrame, fold: int, split: str = "test") -> list[str]:
    """The sorted speakers of `split` in `fold` (a frame with `speaker` and `split_<fold>`)."""
    rows = index[index[split_column(fold)] == split]
    return sorted({str(s) for s in rows["speaker"]})

"""The one rule for scoring a clip from fixed windows: where the windows are, how they combine.

A clip is scored as windows of `cache.window_s` starting every `cache.hop_s` from its start, the
last one ending at the clip's end (a clip shorter than a window: one window at 0, padded), and
its probabilities are the mean of the window probabilities (`AGGREGATE`). The cache stage stores
these windows of each clip (up to `cache.max_clip_s` of it, placed by `cache.crop`), validation,
the evaluate stage and `aver predict` all aggregate them here. Pure numpy (no torch import).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AGGREGATE = "mean of window probabilities"
HOP_S = 1.0  # default cache.hop_s


def window_starts(duration_s: float, window_s: float, hop_s: float = HOP_S) -> np.ndarray:
    """Window start times every `hop_s` from 0; the last window ends at the clip's end.

    A clip shorter than the window gives one window at 0 (padded, as in the cache).
    """
    if hop_s <= 0:
        raise ValueError(f"hop_s must be > 0, got {hop_s}")
    last = max(float(duration_s) - float(window_s), 0.0)
    starts = np.arange(0.0, last + 1e-9, hop_s)
    if last - starts[-1] > 1e-6:
        starts = np.append(starts, last)
    return starts


def capped_starts(
    duration_s: float,
    window_s: float,
    hop_s: float,
    max_clip_s: float,
    crop: str = "center",
) -> np.ndarray:
    """The cache's windows of a clip: `window_starts` over at most `max_clip_s` of it, that span
    centred on the clip (`crop: center`) or at its start (`crop: start`)."""
    span = min(float(duration_s), float(max_clip_s))
    offset = (float(duration_s) - span) / 2 if crop == "center" else 0.0
    return offset + window_starts(span, window_s, hop_s)


def mean_probabilities(probs: np.ndarray) -> np.ndarray:
    """`AGGREGATE` of (W, C) window probabilities: their mean, renormalised to sum to 1."""
    mean = np.asarray(probs, np.float64).mean(axis=0)
    return mean / mean.sum()


def aggregate_by_clip(
    probs: np.ndarray, clip_ids: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(clip ids in first-seen order, (N, C) `AGGREGATE` per clip, first row of each clip) of
    per-window probabilities (W, C) labelled with their clips' ids."""
    order: dict[str, list[int]] = {}
    for i, cid in enumerate(clip_ids):
        order.setdefault(cid, []).append(i)
    ids = list(order)
    out = np.stack([mean_probabilities(probs[rows]) for rows in order.values()]) if ids else probs
    first = np.asarray([rows[0] for rows in order.values()], np.int64)
    return ids, out.astype(np.float32), first

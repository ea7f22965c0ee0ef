"""Normalisation statistics: per-clip moments, pooled per fold over its training clips only.

Audio: mean/std per feature bin (log-mel/MFCC) or per (layer, dim) (a pretrained encoder's
hidden states) over real (masked) frames. Video: mean/std per RGB channel of pixels scaled to
[0, 1] (face crops) or per dim (face embeddings) over real frames. Applied at load time by
`normalise_*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STD_FLOOR = 1e-5
_LEVELS = np.arange(256, dtype=np.float64) / 255.0


@dataclass(frozen=True)
class FoldStats:
    audio_mean: np.ndarray  # (F,) or (L, D) float32
    audio_std: np.ndarray
    video_mean: np.ndarray  # (3,) crops, (E,) embeddings
    video_std: np.ndarray
    n_clips: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "audio_mean": self.audio_mean.tolist(),
            "audio_std": self.audio_std.tolist(),
            "video_mean": self.video_mean.tolist(),
            "video_std": self.video_std.tolist(),
            "n_clips": self.n_clips,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FoldStats:
        def arr(k: str) -> np.ndarray:
            return np.asarray(d[k], dtype=np.float32)

        return cls(
            arr("audio_mean"), arr("audio_std"), arr("video_mean"), arr("video_std"),
            int(d.get("n_clips", 0)),
        )  # fmt: skip


@dataclass
class ClipMoments:
    """Per-clip sufficient statistics (count, sum, sum of squares), float64."""

    audio_n: np.ndarray  # (N,)
    audio_sum: np.ndarray  # (N, F) or (N, L, D)
    audio_sq: np.ndarray
    video_n: np.ndarray  # (N,) pixels per channel (crops) or frames (embeddings)
    video_sum: np.ndarray  # (N, 3) or (N, E)
    video_sq: np.ndarray

    @classmethod
    def concat(cls, parts: list[ClipMoments]) -> ClipMoments:
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__)
        )


def clip_moments(
    audio: np.ndarray, audio_mask: np.ndarray, video: np.ndarray, video_mask: np.ndarray
) -> ClipMoments:
    """Moments of each clip in a batch of cached rows: audio (N, Ta, *F), video crops
    (N, Tv, S, S, 3) uint8 or embeddings (N, Tv, E)."""
    a = np.asarray(audio, dtype=np.float64)
    am = np.asarray(audio_mask, dtype=np.float64).reshape(*a.shape[:2], *(1,) * (a.ndim - 2))
    v_n, v_sum, v_sq = (
        _embedding_moments(video, video_mask)
        if np.asarray(video).ndim == 3
        else _pixel_moments(video, video_mask)
    )
    return ClipMoments(
        audio_n=np.asarray(audio_mask, dtype=np.float64).sum(axis=1),
        audio_sum=(a * am).sum(axis=1),
        audio_sq=(a * a * am).sum(axis=1),
        video_n=v_n,
        video_sum=v_sum,
        video_sq=v_sq,
    )


def _pixel_moments(
    video: np.ndarray, video_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per clip: pixels per channel, and sums of [0, 1] values and their squares per channel."""
    n = len(video)
    v_sum = np.zeros((n, 3))
    v_sq = np.zeros((n, 3))
    v_n = np.zeros(n)
    for i in range(n):
        frames = np.asarray(video[i])[np.asarray(video_mask[i], dtype=bool)]
        if len(frames) == 0:
            continue
        flat = frames.reshape(-1, 3).astype(np.int64)
        hist = np.bincount((flat + np.arange(3) * 256).ravel(), minlength=768).reshape(3, 256)
        v_sum[i] = hist @ _LEVELS
        v_sq[i] = hist @ _LEVELS**2
        v_n[i] = len(flat)
    return v_n, v_sum, v_sq


def _embedding_moments(
    video: np.ndarray, video_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per clip: real frames, and sums of each embedding dim and of its square over them."""
    v = np.asarray(video, dtype=np.float64)
    m = np.asarray(video_mask, dtype=np.float64)[..., None]
    return m[..., 0].sum(axis=1), (v * m).sum(axis=1), (v * v * m).sum(axis=1)


def pooled_stats(m: ClipMoments, select: np.ndarray) -> FoldStats:
    """Mean/std pooled over the selected clips (boolean mask over the moments' rows)."""
    sel = np.asarray(select, dtype=bool)

    def mean_std(n: np.ndarray, s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total = max(float(n[sel].sum()), 1.0)
        mean = s[sel].sum(axis=0) / total
        var = np.maximum(q[sel].sum(axis=0) / total - mean**2, 0.0)
        std = np.maximum(np.sqrt(var), STD_FLOOR)
        return mean.astype(np.float32), std.astype(np.float32)

    a_mean, a_std = mean_std(m.audio_n, m.audio_sum, m.audio_sq)
    v_mean, v_std = mean_std(m.video_n, m.video_sum, m.video_sq)
    return FoldStats(a_mean, a_std, v_mean, v_std, int(sel.sum()))


def normalise_audio(audio: np.ndarray, stats: FoldStats) -> np.ndarray:
    """(T, F) features or (T, L, D) hidden states -> float32 (x - mean) / std per feature."""
    return ((np.asarray(audio, np.float32) - stats.audio_mean) / stats.audio_std).astype(np.float32)


def normalise_video(video: np.ndarray, stats: FoldStats) -> np.ndarray:
    """(T, H, W, 3) uint8 -> float32 (T, 3, H, W), (x/255 - mean) / std per channel; face
    embeddings (T, E) -> float32 (x - mean) / std per dim."""
    if np.asarray(video).ndim == 2:
        return ((np.asarray(video, np.float32) - stats.video_mean) / stats.video_std).astype(
            np.float32
        )
    x = np.asarray(video, dtype=np.float32) * np.float32(1 / 255)
    x = (x - stats.video_mean) / stats.video_std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

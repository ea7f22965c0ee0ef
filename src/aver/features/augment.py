"""On-the-fly training augmentation of one clip (off in evaluation).

Video: one horizontal flip decision and one small affine jitter (shift, scale, rotation) per clip,
applied to every frame alike so motion stays coherent. Audio: SpecAugment-style time and
frequency masks on the normalised features (masked values set to 0, the training mean).
All randomness comes from the generator passed in, so a seed reproduces an epoch exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flip_p: float = 0.5
    max_shift: float = 0.05  # fraction of the side
    max_scale: float = 0.05  # relative
    max_rotate_deg: float = 5.0
    time_masks: int = 2
    max_time_frac: float = 0.1  # of the real frames, per mask
    freq_masks: int = 2
    max_freq_frac: float = 0.125  # of the bins, per mask


def augment_video(video: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """(T, H, W, 3) uint8 -> augmented copy (same dtype and shape)."""
    out = np.array(video, copy=True)
    if len(out) == 0:
        return out
    if rng.random() < cfg.flip_p:
        out = np.ascontiguousarray(out[:, :, ::-1])
    h, w = out.shape[1:3]
    angle = rng.uniform(-cfg.max_rotate_deg, cfg.max_rotate_deg)
    scale = 1.0 + rng.uniform(-cfg.max_scale, cfg.max_scale)
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, size=2) * (w, h)
    m = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), np.float64)
    m[:, 2] += shift
    for i in range(len(out)):
        out[i] = cv2.warpAffine(out[i], m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    return out


def spec_augment(
    audio: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> np.ndarray:
    """(T, F) normalised features -> copy with time and frequency bands set to 0; hidden
    states (T, L, D) are masked in time and in D (every layer alike)."""
    out = np.array(audio, copy=True)
    n_time = int(np.asarray(mask).sum()) or len(out)
    n_bins = out.shape[-1]
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, max(1, int(cfg.max_time_frac * n_time)) + 1))
        start = int(rng.integers(0, max(1, n_time - width + 1)))
        out[start : start + width] = 0.0
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, max(1, int(cfg.max_freq_frac * n_bins)) + 1))
        start = int(rng.integers(0, max(1, n_bins - width + 1)))
        out[..., start : start + width] = 0.0
    return out

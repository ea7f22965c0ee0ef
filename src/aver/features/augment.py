"""On-the-fly training augmentation of one clip (off in evaluation).

Video: one horizontal flip decision and one small affine jitter (shift, scale, rotation) per clip,
applied to every frame alike so motion stays coherent. Audio: SpecAugment-style time and
frequency masks on the normalised features (masked values set to 0, the training mean).
All randomness comes from the generator passed in, so a seed reproduces an epoch exactly.

Modality dropout (`train.modality_dropout`, fusion models): with probability p a training clip
loses its audio or its video (half each, never both): that modality's mask becomes all False and
its arrays zero, as for a clip without a voice track or a face.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


MODALITIES = ("audio", "video")


def pick_dropped(rng: np.random.Generator, p: float) -> str | None:
    """The modality a training clip loses ("audio" or "video", half each) with chance p."""
    if p <= 0:
        return None
    drop, which = rng.random(2)
    return MODALITIES[int(which >= 0.5)] if drop < p else None


def drop_modality(sample: Mapping[str, Any], modality: str) -> dict[str, Any]:
    """A copy of a prepared sample without `modality`: its arrays zero, its mask all False
    (times kept, so the time axis stays increasing)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; one of {MODALITIES}")
    out = dict(sample)
    out[modality] = np.zeros_like(sample[modality])
    out[f"{modality}_mask"] = np.zeros_like(sample[f"{modality}_mask"], dtype=bool)
    return out

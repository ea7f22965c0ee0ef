"""Aligned face clips resampled onto a fixed time grid (nearest frame) and resized."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np


def grid_times(start_s: float, n_frames: int, fps: float) -> np.ndarray:
    """Centres of `n_frames` output frames of period 1/fps starting at `start_s` (seconds)."""
    return (start_s + (np.arange(n_frames, dtype=np.float64) + 0.5) / fps).astype(np.float32)


def nearest_frames(
    src_times: np.ndarray, targets: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the source frame nearest each target time, and whether it is close enough.

    A target is valid when its output period overlaps the nearest source frame's period
    (|dt| < half an output period + half the median source period).
    """
    src = np.asarray(src_times, dtype=np.float64)
    tgt = np.asarray(targets, dtype=np.float64)
    if len(src) == 0:
        return np.zeros(len(tgt), np.int64), np.zeros(len(tgt), bool)
    order = np.argsort(src, kind="stable")
    src_sorted = src[order]
    pos = np.clip(np.searchsorted(src_sorted, tgt), 1, max(len(src_sorted) - 1, 1))
    left = pos - 1
    right = np.minimum(pos, len(src_sorted) - 1)
    take_right = np.abs(src_sorted[right] - tgt) < np.abs(src_sorted[left] - tgt)
    nearest = np.where(take_right, right, left)
    src_period = float(np.median(np.diff(src_sorted))) if len(src_sorted) > 1 else 1.0 / fps
    tol = 0.5 / fps + 0.5 * src_period - 1e-6  # periods that only touch do not overlap
    valid = np.abs(src_sorted[nearest] - tgt) < tol
    return order[nearest], valid


def resize_faces(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, S, S, 3) uint8 -> (T, size, size, 3) uint8 (area interpolation when shrinking)."""
    if len(frames) == 0 or frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(frames, dtype=np.uint8)
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=interp)
    return out


def video_window(
    faces: Mapping[str, np.ndarray], start_s: float, n_frames: int, fps: float, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face frames at `n_frames` grid times from `start_s`: (video, mask, times).

    Valid positions hold the nearest aligned face and its own timestamp; padding positions are
    zeros with the grid time and mask False.
    """
    targets = grid_times(start_s, n_frames, fps)
    src_times = np.asarray(faces["times"], dtype=np.float32)
    idx, valid = nearest_frames(src_times, targets, fps)
    video = np.zeros((n_frames, size, size, 3), np.uint8)
    times = targets.copy()
    if valid.any():
        src = np.asarray(faces["frames"][idx[valid]])  # copies only the frames used
        video[valid] = resize_faces(src, size)
        times[valid] = src_times[idx[valid]]
    return video, valid, times

"""The detector factory (`align.detector` -> a Detector) and batched detection on downscaled frames.

The interface (Detector, Detections) lives in aver.faces.detection, which the detectors import:
the arrows go factory -> detectors -> interface, never back.
"""

from __future__ import annotations

import importlib

import cv2
import numpy as np

from aver.config import AlignConfig
from aver.errors import ConfigError
from aver.faces import DETECTORS
from aver.faces.detection import Detections, Detector

__all__ = ["Detections", "Detector", "detect_frames", "make_detector", "resolve_device"]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def make_detector(cfg: AlignConfig) -> Detector:
    """Build the detector named by `align.detector` (aver.faces.DETECTORS) on `align.device`."""
    target = DETECTORS.get(cfg.detector)
    if target is None:
        raise ConfigError(
            f"align.detector: unknown detector {cfg.detector!r}",
            fix=f"set align.detector to one of {', '.join(DETECTORS)}",
        )
    module, name = target[1].split(":")
    detector: Detector = getattr(importlib.import_module(module), name)(
        cfg, resolve_device(cfg.device)
    )
    return detector


def detect_frames(
    detector: Detector, frames: list[np.ndarray], *, max_side: int, batch_size: int
) -> list[Detections]:
    """Detect on frames shrunk so the longer side is <= `max_side`, in batches of `batch_size`.

    Returned coordinates are in the original frames' pixels.
    """
    if not frames:
        return []
    h, w = frames[0].shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        fx, fy = w / size[0], h / size[1]
    else:
        small, fx, fy = frames, 1.0, 1.0
    out: list[Detections] = []
    for start in range(0, len(small), batch_size):
        out.extend(detector.detect(small[start : start + batch_size]))
    return [d.scaled(fx, fy) for d in out] if scale < 1.0 else out

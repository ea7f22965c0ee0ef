"""The face detector interface, the factory, and batched detection on downscaled frames."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from aver.config import AlignConfig
from aver.errors import ConfigError
from aver.faces import DETECTORS


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame: boxes (n, 4) xyxy, scores (n,), landmarks (n, 5, 2), pixels.

    Landmark order: left eye, right eye, nose, left mouth corner, right mouth corner (image
    left/right, as in the ArcFace template).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32),
        )

    def __len__(self) -> int:
        return len(self.scores)

    def scaled(self, fx: float, fy: float) -> Detections:
        """Coordinates multiplied by (fx, fy) (back to source-frame pixels after a resize)."""
        f = np.array([fx, fy], np.float32)
        return Detections(self.boxes * np.tile(f, 2), self.scores, self.landmarks * f)


class Detector(Protocol):
    """Batched face detector: RGB uint8 frames (H, W, 3) of one size -> one Detections each."""

    def detect(self, frames: list[np.ndarray]) -> list[Detections]: ...


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
    module, name = target.split(":")
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

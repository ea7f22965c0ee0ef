"""The face detector interface: a Detector maps frames to one Detections per frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


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
    """Batched face detector: RGB uint8 frames (H, W, 3) of one size -> one Detections each.

    `min_size`: faces with a side under this many pixels need not be found, a hint a detector
    may use to do less work (MTCNN skips its finest pyramid levels); None: its own smallest.
    """

    def detect(
        self, frames: list[np.ndarray], min_size: float | None = None
    ) -> list[Detections]: ...

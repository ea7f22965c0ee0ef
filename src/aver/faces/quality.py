"""Alignment error without ground truth: re-detect landmarks on aligned crops, compare to the
template (a correct warp puts the real face's landmarks on it)."""

from __future__ import annotations

import cv2
import numpy as np

from aver.faces.alignment import template
from aver.faces.detection import Detector


def template_error(frames: np.ndarray, detector: Detector, points: int = 7) -> list[float]:
    """Mean distance (px) of the landmarks re-detected on `points` evenly spread aligned crops
    (T, S, S, 3) from the template, per crop; NaN where no face is found."""
    size = frames.shape[1]
    pad = size // 2
    errors = []
    for i in np.linspace(0, len(frames) - 1, points + 2)[1:-1].round().astype(int):
        padded = cv2.copyMakeBorder(
            np.ascontiguousarray(frames[i]), pad, pad, pad, pad, cv2.BORDER_REPLICATE
        )
        found = detector.detect([padded])[0]
        if not len(found):
            errors.append(float("nan"))
            continue
        dist = np.linalg.norm(found.landmarks[0] - pad - template(size), axis=1)
        errors.append(float(dist.mean()))
    return errors

"""Detection on the frames that need it, fed while the clip decodes (bounded memory).

Candidates are every `align.detect_every`-th sampled frame plus the last. Every `skip`-th
candidate (and the last) is searched; the candidates between two searched ones are searched
too unless the tracker is confident there: both ends found a face and the main (largest)
face's landmarks moved less than `tolerance` x its box side between them. Frames are shrunk
to `max_side` when they arrive and dropped once their interval is decided, so at most
`batch_size` x `skip` small frames are held.
"""

from __future__ import annotations

import cv2
import numpy as np

from aver.faces.detection import Detections, Detector


def shrink(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """`frame` with its longer side <= `max_side` (area interpolation) and the factors (fx, fy)
    that map its pixels back to the frame's."""
    h, w = frame.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return frame, 1.0, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), w / size[0], h / size[1]


def _main_face(det: Detections) -> tuple[np.ndarray, float] | None:
    """Landmarks and box side of the largest face, or None."""
    if not len(det):
        return None
    wh = np.clip(det.boxes[:, 2:] - det.boxes[:, :2], 0, None)
    i = int(np.argmax(wh[:, 0] * wh[:, 1]))
    return det.landmarks[i], float(np.sqrt(wh[i, 0] * wh[i, 1]))


def still(a: Detections, b: Detections, tolerance: float) -> bool:
    """Both found a face and the main face's landmarks moved < `tolerance` x its box side."""
    fa, fb = _main_face(a), _main_face(b)
    if fa is None or fb is None:
        return False
    shift = float(np.max(np.linalg.norm(fa[0] - fb[0], axis=-1)))
    return shift < tolerance * 0.5 * (fa[1] + fb[1])


class SparseDetection:
    """Feed candidate frames in order with `add`; `finish` gives (searched frames, detections)."""

    def __init__(
        self,
        detector: Detector,
        *,
        max_side: int,
        batch_size: int,
        skip: int = 1,
        tolerance: float = 0.0,
    ) -> None:
        self.detector, self.max_side, self.batch_size = detector, max_side, batch_size
        self.skip, self.tolerance = max(1, skip), tolerance
        self.found: dict[int, Detections] = {}
        self._scale = (1.0, 1.0)
        self._count = 0
        self._last: tuple[int, Detections] | None = None  # the last searched anchor
        self._between: list[tuple[int, np.ndarray]] = []  # candidates since the last anchor
        self._queue: list[tuple[int, np.ndarray, list[tuple[int, np.ndarray]]]] = []

    def add(self, index: int, frame: np.ndarray) -> None:
        """A candidate frame (RGB, full size); all frames of a clip share one size."""
        small, fx, fy = shrink(frame, self.max_side)
        self._scale = (fx, fy)
        if self._count % self.skip == 0:
            self._queue.append((index, small, self._between))
            self._between = []
            if len(self._queue) >= self.batch_size:
                self._flush()
        else:
            self._between.append((index, small))
        self._count += 1

    def finish(self) -> tuple[list[int], list[Detections]]:
        """Search what is left (the last candidate is always searched); sorted results."""
        if self._between:
            index, small = self._between.pop()
            self._queue.append((index, small, self._between))
            self._between = []
        self._flush()
        frames = sorted(self.found)
        return frames, [self.found[i] for i in frames]

    def _detect(self, images: list[np.ndarray]) -> list[Detections]:
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self.detector.detect(images[start : start + self.batch_size]))
        fx, fy = self._scale
        return out if (fx, fy) == (1.0, 1.0) else [d.scaled(fx, fy) for d in out]

    def _flush(self) -> None:
        if not self._queue:
            return
        anchors = self._detect([small for _, small, _ in self._queue])
        refine: list[tuple[int, np.ndarray]] = []
        for (index, _, between), det in zip(self._queue, anchors):
            confident = self._last is not None and still(self._last[1], det, self.tolerance)
            if between and not confident:
                refine.extend(between)
            self.found[index] = det
            self._last = (index, det)
        for (index, _), det in zip(refine, self._detect([small for _, small in refine])):
            self.found[index] = det
        self._queue = []

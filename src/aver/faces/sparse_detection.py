"""Detection on the frames that need it, fed while the clip decodes (bounded memory).

Candidates are every `align.detect_every`-th sampled frame plus the last. Every `skip`-th
candidate (and the last) is searched; the candidates between two searched ones are searched
too unless the tracker is confident there: both ends found a face and the main (largest)
face's landmarks moved less than `tolerance` x its box side between them, or, when it moved,
the middle candidate's face lies on the line between the ends (within the same tolerance: the
tracker's interpolation holds), so only that one is searched. Frames are shrunk
to `max_side` when they arrive and dropped once their interval is decided, so at most
`batch_size` x `skip` small frames are held.

While a face is tracked, searches look only for faces at least `track_min_face` x the main
face's side (the detector's `min_size` hint: MTCNN skips its finest pyramid levels); a frame
where that finds nothing is searched whole. A clip's first searched frame is always whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from aver.faces.detection import Detections, Detector

if TYPE_CHECKING:
    from aver.config import AlignConfig


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


def on_line(
    start: tuple[int, Detections],
    middle: tuple[int, Detections],
    end: tuple[int, Detections],
    tolerance: float,
) -> bool:
    """All three found a face and the middle frame's main-face landmarks are within
    `tolerance` x its box side of the straight line from `start`'s to `end`'s (by frame)."""
    faces = [_main_face(det) for _, det in (start, middle, end)]
    if any(f is None for f in faces):
        return False
    (a, side_a), (m, side_m), (b, side_b) = faces  # type: ignore[misc]
    t = (middle[0] - start[0]) / (end[0] - start[0])
    shift = float(np.max(np.linalg.norm(m - (a + t * (b - a)), axis=-1)))
    return shift < tolerance * (side_a + side_m + side_b) / 3


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
        track_min_face: float = 0.0,
    ) -> None:
        self.detector, self.max_side, self.batch_size = detector, max_side, batch_size
        self.skip, self.tolerance = max(1, skip), tolerance
        self.track_min_face = track_min_face
        self.found: dict[int, Detections] = {}
        self._scale = (1.0, 1.0)
        self._count = 0
        self._last: tuple[int, Detections] | None = None  # the last searched anchor
        self._between: list[tuple[int, np.ndarray]] = []  # candidates since the last anchor
        self._queue: list[tuple[int, np.ndarray, list[tuple[int, np.ndarray]]]] = []

    @classmethod
    def from_config(cls, detector: Detector, cfg: AlignConfig) -> SparseDetection:
        """Sparse detection as `align` configures it (the align stage and `aver predict`)."""
        return cls(
            detector, max_side=cfg.detect_side, batch_size=cfg.batch_size, skip=cfg.max_skip,
            tolerance=cfg.still_tolerance, track_min_face=cfg.track_min_face,
        )  # fmt: skip

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

    def _sought(self, found: list[Detections]) -> float | None:
        """The smallest face side worth seeking (detection pixels): `track_min_face` x the
        smallest main face of `found`; None (seek all) when none has a face."""
        sides = [m[1] for m in map(_main_face, found) if m is not None]
        if not sides or self.track_min_face <= 0:
            return None
        fx, fy = self._scale
        return self.track_min_face * min(sides) / float(np.sqrt(fx * fy))

    def _search(self, images: list[np.ndarray], sought: float | None) -> list[Detections]:
        """Detections in the small frames' pixels; frames where faces of `sought` pixels or
        more were not found are searched whole."""
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self.detector.detect(images[start : start + self.batch_size], sought))
        empty = [k for k, d in enumerate(out) if not len(d)]
        if sought is not None and empty:
            for k, d in zip(empty, self._search([images[k] for k in empty], None)):
                out[k] = d
        return out

    def _detect(self, images: list[np.ndarray], sought: float | None = None) -> list[Detections]:
        """Detections in source-frame pixels."""
        out = self._search(images, sought)
        fx, fy = self._scale
        return out if (fx, fy) == (1.0, 1.0) else [d.scaled(fx, fy) for d in out]

    def _search_anchors(self) -> list[Detections]:
        """The queued anchors' faces; without a tracked face, the first is searched whole and
        its face sets the size sought in the others."""
        smalls = [small for _, small, _ in self._queue]
        if self._last is not None:
            return self._detect(smalls, self._sought([self._last[1]]))
        first = self._detect(smalls[:1])
        return first + (self._detect(smalls[1:], self._sought(first)) if smalls[1:] else [])

    def _flush(self) -> None:
        if not self._queue:
            return
        anchors = self._search_anchors()
        pending: list[tuple[tuple[int, Detections] | None, tuple[int, Detections], list]] = []
        for (index, _, between), det in zip(self._queue, anchors):
            confident = self._last is not None and still(self._last[1], det, self.tolerance)
            if between and not confident:
                pending.append((self._last, (index, det), between))
            self.found[index] = det
            self._last = (index, det)
        sought = self._sought(anchors)
        # first the middle candidate of each interval the face moved in ...
        middles = [between[len(between) // 2] for _, _, between in pending]
        for (index, _), det in zip(middles, self._detect([s for _, s in middles], sought)):
            self.found[index] = det
        # ... then the others, unless the face moved in a line (the tracker interpolates it)
        rest: list[tuple[int, np.ndarray]] = []
        for (start, end, between), (index, _) in zip(pending, middles):
            if start is None or not on_line(start, (index, self.found[index]), end, self.tolerance):
                rest.extend(c for c in between if c[0] != index)
        for (index, _), det in zip(rest, self._detect([s for _, s in rest], sought)):
            self.found[index] = det
        self._queue = []

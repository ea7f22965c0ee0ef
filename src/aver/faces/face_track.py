"""Link per-frame detections into tracks, pick the main face, fill and smooth it over time.

Detection runs on a subset of the sampled frames (`detection_frames`); the main track's boxes and
landmarks are interpolated between its detections, held before the first and after the last,
and smoothed with a forward-backward EMA. A frame is `detected` when it is a detection frame where
the main track was found, or lies between two consecutive detection frames that both found it;
every other frame is filled from the track and flagged False.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from aver.faces.detection import Detections


def detection_frames(n_frames: int, every: int) -> list[int]:
    """Every `every`-th frame index, plus the last frame (so the end is never extrapolated)."""
    if n_frames <= 0:
        return []
    idx = list(range(0, n_frames, every))
    if idx[-1] != n_frames - 1:
        idx.append(n_frames - 1)
    return idx


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (n, 4) x (m, 4) -> (n, m)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class Track:
    """One face over time: its detections keyed by sampled-frame index."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)

    def add(self, frame: int, box: np.ndarray, marks: np.ndarray) -> None:
        self.frames.append(frame)
        self.boxes.append(np.asarray(box, np.float32))
        self.landmarks.append(np.asarray(marks, np.float32))

    @property
    def score(self) -> float:
        """Largest and most persistent: the sum over detections of the box side (sqrt area)."""
        b = np.stack(self.boxes)
        return float(
            np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)).sum()
        )


def link_tracks(
    dets: list[Detections], frames: list[int], iou_threshold: float = 0.3
) -> list[Track]:
    """Greedy IoU linking: each detection joins the open track whose last box overlaps it most."""
    tracks: list[Track] = []
    for frame, det in zip(frames, dets):
        if not len(det):
            continue
        free = set(range(len(det)))
        if tracks:
            last = np.stack([t.boxes[-1] for t in tracks])
            overlap = iou(last, det.boxes)
            for ti, di in sorted(
                np.argwhere(overlap > iou_threshold).tolist(), key=lambda p: -overlap[p[0], p[1]]
            ):
                if di in free and tracks[ti].frames[-1] != frame:
                    tracks[ti].add(frame, det.boxes[di], det.landmarks[di])
                    free.discard(di)
        for di in sorted(free):
            track = Track()
            track.add(frame, det.boxes[di], det.landmarks[di])
            tracks.append(track)
    return tracks


def main_track(tracks: list[Track]) -> Track | None:
    """The track with the highest score (the largest, most persistent face), or None."""
    return max(tracks, key=lambda t: t.score) if tracks else None


def ema_smooth(x: np.ndarray, weight: float) -> np.ndarray:
    """Forward-backward EMA along axis 0 (`weight` = weight of the previous value; no lag)."""
    x = np.asarray(x, np.float64)
    if weight <= 0 or len(x) < 2:
        return x.astype(np.float32)
    fwd, bwd = x.copy(), x.copy()
    for t in range(1, len(x)):
        fwd[t] = weight * fwd[t - 1] + (1 - weight) * x[t]
        bwd[-t - 1] = weight * bwd[-t] + (1 - weight) * x[-t - 1]
    return ((fwd + bwd) / 2).astype(np.float32)


@dataclass(frozen=True)
class FaceTrack:
    """Per sampled frame: boxes (T, 4), landmarks (T, 5, 2), detected (T,)."""

    boxes: np.ndarray
    landmarks: np.ndarray
    detected: np.ndarray

    @property
    def detection_rate(self) -> float:
        return float(self.detected.mean()) if len(self.detected) else 0.0


def fill_track(track: Track, det_frames: list[int], n_frames: int, smoothing: float) -> FaceTrack:
    """Interpolate the track's boxes and landmarks to every frame; flag the filled ones."""
    keys = np.asarray(track.frames)
    values = np.concatenate(
        [np.stack(track.boxes), np.stack(track.landmarks).reshape(len(keys), 10)], axis=1
    )
    t = np.arange(n_frames)
    filled = np.stack([np.interp(t, keys, values[:, j]) for j in range(values.shape[1])], axis=1)
    filled = ema_smooth(filled, smoothing)

    found = set(track.frames)
    searched = np.asarray(det_frames)
    detected = np.zeros(n_frames, dtype=bool)
    for a, b in itertools.pairwise(keys):
        # a and b are neighbours among the searched frames: the face was never lost between them
        between = searched[(searched > a) & (searched < b)]
        if not len(between):
            detected[a : b + 1] = True
    detected[[k for k in found if k < n_frames]] = True
    return FaceTrack(filled[:, :4], filled[:, 4:].reshape(n_frames, 5, 2), detected)


def track_faces(
    dets: list[Detections], det_frames: list[int], n_frames: int, smoothing: float
) -> FaceTrack | None:
    """Main face over `n_frames` sampled frames from detections on `det_frames`; None if no face."""
    best = main_track(link_tracks(dets, det_frames))
    if best is None:
        return None
    return fill_track(best, det_frames, n_frames, smoothing)

"""The align stage's detect-track-align on one extracted video, streamed for long videos.

`aver.faces.pipeline.align_clip` holds every aligned face of a clip; here the same two decoding
passes run with bounded memory: `track_clip` detects on every `align.detect_every`-th sampled
frame in batches as they are decoded (holding one batch of frames) and tracks the main face over
the whole clip (a few numbers per frame), then `aligned_faces` decodes again and yields each
sampled frame's aligned face one at a time. Detection batches, track and warps are the align
stage's, so a short clip gets the faces the cache holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aver.config import AlignConfig
from aver.errors import DataError
from aver.faces.alignment import align_face
from aver.faces.detectors import Detector, detect_frames, make_detector
from aver.faces.face_track import FaceTrack, track_faces
from aver.faces.pipeline import iter_sampled, sampled_fps
from aver.progress import Bar
from aver.progress import bar as progress_bar

_DETECTORS: dict[str, Detector] = {}


def detector(cfg: AlignConfig) -> Detector:
    """The face detector of `cfg`, built once per process (a served model reuses it)."""
    key = cfg.model_dump_json()
    if key not in _DETECTORS:
        _DETECTORS[key] = make_detector(cfg)
    return _DETECTORS[key]


@dataclass(frozen=True)
class ClipTrack:
    """The main face's track over every sampled frame (None: no face detected at all)."""

    track: FaceTrack | None
    times: np.ndarray  # (n,) float32 frame-centre times, seconds
    fps: float

    @property
    def n_frames(self) -> int:
        return len(self.times)

    @property
    def detection_rate(self) -> float:
        return 0.0 if self.track is None else self.track.detection_rate


def track_clip(
    path: str | Path, cfg: AlignConfig, det: Detector, *, duration_s: float = 0.0,
    progress: bool = False,
) -> ClipTrack:  # fmt: skip
    """Pass 1 of align_clip, streamed: detections in `cfg.batch_size` batches, then the track
    (`progress`: a bar over the `duration_s` seconds of video on a terminal)."""
    bar = progress_bar(
        total=round(duration_s), desc="predict: faces", unit="s", disable=None if progress else True
    )
    with bar:
        return _track_clip(path, cfg, det, bar)


def _track_clip(path: str | Path, cfg: AlignConfig, det: Detector, bar: Bar) -> ClipTrack:
    pending: list[np.ndarray] = []
    dets: list = []
    det_idx: list[int] = []
    times: list[float] = []
    last = None

    def flush() -> None:
        dets.extend(
            detect_frames(det, pending, max_side=cfg.detect_side, batch_size=cfg.batch_size)
        )
        pending.clear()

    for i, t, frame in iter_sampled(path, cfg.sample_fps):
        times.append(t)
        if int(t) > bar.n:
            bar.update(int(t) - bar.n)
        if i % cfg.detect_every == 0:
            pending.append(frame.to_ndarray(format="rgb24"))
            det_idx.append(i)
            if len(pending) == cfg.batch_size:
                flush()
        last = frame
    n = len(times)
    if n == 0 or last is None:
        raise DataError("video has no frames", path=path, fix="rerun the extract stage")
    if det_idx[-1] != n - 1:  # the last frame is always a detection frame (detection_frames)
        pending.append(last.to_ndarray(format="rgb24"))
        det_idx.append(n - 1)
    del last
    flush()
    track = track_faces(dets, det_idx, n, cfg.smoothing)
    return ClipTrack(track, np.asarray(times, np.float32), sampled_fps(path, cfg.sample_fps))


def aligned_faces(
    path: str | Path, cfg: AlignConfig, clip: ClipTrack
) -> Iterator[tuple[float, np.ndarray, bool]]:
    """Pass 2 of align_clip, streamed: (time, aligned face, detected) per sampled frame."""
    track = clip.track
    if track is None:
        return
    for i, _, frame in iter_sampled(path, cfg.sample_fps):
        if i >= clip.n_frames:
            break
        face = align_face(frame.to_ndarray(format="rgb24"), track.landmarks[i], cfg.size)
        yield float(clip.times[i]), face, bool(track.detected[i])

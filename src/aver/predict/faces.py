"""The align stage's detect-track-align on one extracted video, streamed for long videos.

`aver.faces.pipeline.align_clip` holds a clip's kept frames for the warp; here two decoding
passes run with bounded memory for any length: `track_clip` detects as align does
(`aver.faces.sparse_detection`: every `align.detect_every`-th sampled frame, fewer while the
face is still, fed as frames are decoded) and tracks the main face over the whole clip (a few
numbers per frame), then `aligned_faces` decodes again and yields each sampled frame's aligned
face one at a time. Detections, track and warps are the align stage's, so a short clip gets the
faces the cache holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aver.config import AlignConfig
from aver.errors import DataError
from aver.faces.alignment import align_face
from aver.faces.detectors import Detector, make_detector
from aver.faces.face_track import FaceTrack, track_faces
from aver.faces.pipeline import iter_sampled, sampled_fps
from aver.faces.sparse_detection import SparseDetection
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
    search = SparseDetection.from_config(det, cfg)
    times: list[float] = []
    last = None  # (index, searched, frame)
    for i, t, frame in iter_sampled(path, cfg.sample_fps):
        times.append(t)
        if int(t) > bar.n:
            bar.update(int(t) - bar.n)
        candidate = i % cfg.detect_every == 0
        if candidate:
            search.add(i, frame.to_ndarray(format="rgb24"))
        last = (i, candidate, frame)
    n = len(times)
    if n == 0 or last is None:
        raise DataError("video has no frames", path=path, fix="rerun the extract stage")
    if not last[1]:  # the last frame is always a detection frame (as in align_clip)
        search.add(last[0], last[2].to_ndarray(format="rgb24"))
    del last
    det_idx, dets = search.finish()
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

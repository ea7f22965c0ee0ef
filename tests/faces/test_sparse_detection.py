"""Sparse detection: searched frames skip while the face is still, all of them when it moves."""

from __future__ import annotations

import numpy as np
import pytest

from aver.faces.detection import Detections
from aver.faces.sparse_detection import SparseDetection, shrink, still


def _face(x: float, side: float = 100.0) -> Detections:
    marks = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)
    marks[:, 0] += x
    return Detections(
        np.array([[x, 0, x + side, side]], np.float32), np.ones(1, np.float32), marks[None]
    )


class Scripted:
    """Detector whose frames carry the face x position in pixel (0, 0); -1: no face."""

    def __init__(self, side: float = 100.0) -> None:
        self.seen: list[int] = []
        self.sought: list[float | None] = []  # the min_size hint of each frame's search
        self.side = side

    def detect(self, frames, min_size=None):
        out = []
        for f in frames:
            x = int(f[0, 0, 0]) - 1
            self.seen.append(x)
            self.sought.append(min_size)
            small = min_size is not None and self.side < min_size  # not sought: not found
            out.append(Detections.empty() if x < 0 or small else _face(float(x), self.side))
        return out


def _run(
    xs: list[int], skip: int, batch_size: int = 3, track_min_face: float = 0.0
) -> tuple[list[int], Scripted]:
    det = Scripted()
    search = SparseDetection(
        det, max_side=64, batch_size=batch_size, skip=skip, tolerance=0.02,
        track_min_face=track_min_face,
    )  # fmt: skip
    for i, x in enumerate(xs):
        search.add(i, np.full((8, 8, 3), x + 1, np.uint8))
    frames, dets = search.finish()
    assert len(frames) == len(dets)
    assert len(det.seen) == len(frames) or track_min_face > 0  # > with searches done again
    return frames, det


def test_a_still_face_is_searched_every_skip_th_candidate_and_at_the_end():
    frames, _ = _run([10] * 11, skip=4)
    assert frames == [0, 4, 8, 10]


def test_a_face_moving_in_a_line_is_searched_once_between_anchors():
    """Constant speed: each interval's middle candidate lies on the line, the rest are left
    to the tracker's interpolation (the one candidate of the last interval is its middle)."""
    assert _run([10 + 5 * i for i in range(11)], skip=4)[0] == [0, 2, 4, 6, 8, 9, 10]


def test_a_face_moving_off_the_line_or_lost_is_searched_at_every_candidate():
    zigzag = [10 + 8 * (i % 2) + 3 * (i % 3) for i in range(11)]
    assert _run(zigzag, skip=4)[0] == list(range(11))
    xs = [10] * 11
    xs[4] = -1  # lost at a searched frame: both intervals around it are searched in full
    assert _run(xs, skip=4)[0] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]


def test_skip_one_searches_every_candidate():
    assert _run([10] * 7, skip=1)[0] == list(range(7))


@pytest.mark.parametrize("shift,expected", [(1.0, True), (3.0, False)])
def test_still_means_landmarks_moved_less_than_the_tolerance(shift, expected):
    assert still(_face(0.0), _face(shift), 0.02) is expected
    assert not still(_face(0.0), Detections.empty(), 0.02)


def test_shrink_maps_back_to_frame_pixels():
    small, fx, fy = shrink(np.zeros((180, 320, 3), np.uint8), 160)
    assert small.shape == (90, 160, 3) and (fx, fy) == (2.0, 2.0)
    same, fx, fy = shrink(np.zeros((10, 20, 3), np.uint8), 160)
    assert same.shape == (10, 20, 3) and (fx, fy) == (1.0, 1.0)


def test_a_tracked_face_sets_the_size_sought_and_a_miss_is_searched_whole():
    """The first search is whole; later ones seek faces >= track_min_face x the tracked side;
    a frame without a face that large is searched again whole (lost: found nowhere)."""
    xs = [10 + 5 * i for i in range(7)]
    xs[5] = -1
    frames, det = _run(xs, skip=1, batch_size=3, track_min_face=0.5)
    assert frames == list(range(7))
    assert det.sought[0] is None
    assert det.sought[1:6] == [50.0] * 5  # the main face is 100 px (frames not shrunk)
    assert det.seen[5:7] == [-1, -1] and det.sought[6] is None  # frame 5 again, whole
    assert det.sought[7] is None  # the next batch: the last anchor had no face
    assert len(det.seen) == 8


def test_a_face_smaller_than_sought_is_still_found():
    det = Scripted(side=20.0)
    search = SparseDetection(det, max_side=64, batch_size=2, track_min_face=0.5)
    for i in range(4):
        search.add(i, np.full((8, 8, 3), 11, np.uint8))
    frames, dets = search.finish()
    assert frames == [0, 1, 2, 3] and all(len(d) == 1 for d in dets)

"""Tracking: main-face choice, interpolation, filling and flags, on synthetic and real clips."""

from __future__ import annotations

import numpy as np
import pytest

from aver.config import AlignConfig
from aver.faces.detection import Detections
from aver.faces.face_track import detection_frames, ema_smooth, iou, track_faces
from aver.faces.pipeline import align_clip
from tests.faces.conftest import gap_clip, two_faces, write_video


def _det(*boxes: tuple[float, float, float, float]) -> Detections:
    b = np.array(boxes, np.float32).reshape(-1, 4)
    centre = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    marks = np.repeat(centre[:, None, :], 5, axis=1)
    return Detections(b, np.ones(len(b), np.float32), marks)


def test_detection_frames_always_include_the_last():
    assert detection_frames(12, 5) == [0, 5, 10, 11]
    assert detection_frames(11, 5) == [0, 5, 10]
    assert detection_frames(1, 5) == [0]
    assert detection_frames(0, 5) == []


def test_iou():
    assert iou([0, 0, 10, 10], [5, 0, 15, 10])[0, 0] == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [20, 20, 30, 30])[0, 0] == 0


def test_ema_smoothing_keeps_constants_and_damps_jitter():
    const = np.full((20, 3), 7.0)
    assert np.allclose(ema_smooth(const, 0.6), 7.0)
    jitter = np.tile([0.0, 10.0], 20)[:, None]
    assert ema_smooth(jitter, 0.6).std() < 0.5 * jitter.std()
    assert np.array_equal(ema_smooth(jitter, 0.0), jitter.astype(np.float32))


def test_larger_persistent_face_wins_and_gaps_are_interpolated_and_flagged():
    frames = detection_frames(21, 5)  # 0 5 10 15 20
    big, small = (100, 100, 200, 220), (10, 10, 40, 40)
    dets = [_det(big, small), _det(small), _det(small), _det(big, small), _det(big, small)]
    track = track_faces(dets, frames, 21, smoothing=0.0)
    assert track is not None
    assert np.allclose(track.boxes[:, :2].min(0), [100, 100])  # always the big face
    # found at 0, 15, 20: 0..15 is interpolated across two misses -> filled, 15..20 detected
    expected = np.zeros(21, bool)
    expected[0] = True
    expected[15:] = True
    assert np.array_equal(track.detected, expected)
    assert track.detection_rate == pytest.approx(7 / 21)


def test_no_detections_gives_no_track():
    frames = detection_frames(10, 5)
    assert track_faces([Detections.empty() for _ in frames], frames, 10, 0.5) is None


@pytest.mark.parametrize("big,small", [("hopper", "astronaut"), ("astronaut", "hopper")])
def test_two_faces_clip_picks_the_larger(tmp_path, mtcnn, big, small):
    path = write_video(tmp_path / "two.mp4", two_faces(20, big, small))
    clip = align_clip(path, AlignConfig(detect_every=5), mtcnn)
    assert clip.arrays is not None and clip.n_frames == 20
    eye_x = clip.arrays["landmarks"][:, :2, 0]
    assert (eye_x < 160).all()  # the big face is on the left half, the small one at x > 220
    assert clip.detection_rate == 1.0


def test_face_that_disappears_is_filled_flagged_and_counted(tmp_path, mtcnn):
    gone = range(12, 27)
    path = write_video(tmp_path / "gap.mp4", gap_clip(40, gone))
    clip = align_clip(path, AlignConfig(detect_every=1, smoothing=0.5), mtcnn)
    assert clip.arrays is not None
    detected = clip.arrays["detected"]
    assert detected.dtype == bool and len(detected) == 40
    assert not detected[list(gone)].any()
    assert detected[[t for t in range(40) if t not in gone]].all()
    assert clip.detection_rate == pytest.approx(25 / 40)
    # the filled frames carry the (still) face's landmarks, not zeros
    marks = clip.arrays["landmarks"]
    assert np.abs(marks[list(gone)] - marks[0]).max() < 3
    assert clip.arrays["frames"][list(gone)].mean() > 20

    # sparser detection: misses at 15, 20, 25 -> frames 11..29 are filled (10 and 30 found)
    clip5 = align_clip(path, AlignConfig(detect_every=5), mtcnn)
    expected = np.ones(40, bool)
    expected[11:30] = False
    assert np.array_equal(clip5.arrays["detected"], expected)
    assert clip5.detection_rate == pytest.approx(21 / 40)

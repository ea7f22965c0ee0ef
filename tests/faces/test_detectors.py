"""MTCNN behind the detector interface: batching, shapes, downscaled detection."""

from __future__ import annotations

import numpy as np

from aver.config import AlignConfig
from aver.faces.detection import Detections
from aver.faces.detectors import detect_frames, make_detector
from aver.faces.mtcnn import MtcnnDetector
from tests.faces.conftest import blank, moving_face, two_faces


def test_factory_builds_mtcnn_on_cpu():
    det = make_detector(AlignConfig(detector="mtcnn", device="cpu"))
    assert isinstance(det, MtcnnDetector)


def test_batch_of_frames_gives_one_detections_each(mtcnn):
    frames = [moving_face(1)[0], blank(), two_faces(1, "hopper", "astronaut")[0]]
    out = mtcnn.detect(frames)
    assert [len(d) for d in out] == [1, 0, 2]
    for d in out:
        assert isinstance(d, Detections)
        assert d.boxes.shape == (len(d), 4) and d.landmarks.shape == (len(d), 5, 2)
        assert d.boxes.dtype == np.float32
    face = out[0]
    (x0, y0, x1, y1), marks = face.boxes[0], face.landmarks[0]
    assert x0 < marks[:, 0].min() and marks[:, 0].max() < x1
    assert y0 < marks[:, 1].min() and marks[:, 1].max() < y1
    assert marks[0, 0] < marks[1, 0]  # left eye is left in the image


def test_downscaled_detection_returns_source_coordinates(mtcnn):
    frames = moving_face(3)
    full = mtcnn.detect(frames)
    small = detect_frames(mtcnn, frames, max_side=160, batch_size=2)
    assert len(small) == 3
    for a, b in zip(full, small):
        assert len(b) == 1
        assert np.abs(a.landmarks[0] - b.landmarks[0]).max() < 6
        assert np.abs(a.boxes[0] - b.boxes[0]).max() < 10


def test_detector_names_come_from_the_registry():
    """align.detector accepts exactly aver.faces.DETECTORS; each entry resolves to a builder."""
    import importlib

    import pytest

    from aver.faces import DETECTORS

    assert list(DETECTORS) == ["mtcnn", "retinaface"]
    for name, (options, target) in DETECTORS.items():
        assert AlignConfig(detector=name).detector == name
        module, attr = target.split(":")
        assert callable(getattr(importlib.import_module(module), attr))
        # the detector's own settings are align settings, validated by its options class
        assert issubclass(AlignConfig, options)
        assert set(options.model_fields) <= set(AlignConfig.model_fields)
    with pytest.raises(ValueError, match="valid choices: 'mtcnn', 'retinaface'"):
        AlignConfig(detector="dlib")

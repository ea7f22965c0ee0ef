"""aver's MTCNN port against facenet-pytorch's: the same faces, without torchvision at import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aver.faces import mtcnn_stages as st
from tests.faces.conftest import blank, face_crop, place, two_faces


@pytest.fixture(scope="module")
def reference():
    facenet = pytest.importorskip("facenet_pytorch")
    return facenet.MTCNN(keep_all=True)


def _frames() -> list[np.ndarray]:
    """Faces of several sizes, two faces, a face cut by the border, no face."""
    frames = [place(blank(s), face_crop("hopper"), 30 + 7 * s, 20, 60 + 25 * s) for s in range(5)]
    frames += two_faces(2, "astronaut", "hopper")
    frames.append(place(blank(9), face_crop("astronaut"), 200, 100, 170))  # cut by the border
    frames.append(blank(11))
    return frames


def _assert_same(ours, theirs) -> int:
    boxes, probs, points = theirs
    for det, b, p, pts in zip(ours, boxes, probs, points):
        if b is None:
            assert len(det) == 0
            continue
        assert len(det) == len(b)
        np.testing.assert_allclose(det.boxes, np.asarray(b, np.float64), atol=1e-3)
        np.testing.assert_allclose(det.scores, np.asarray(p, np.float64), atol=1e-5)
        np.testing.assert_allclose(det.landmarks, np.asarray(pts, np.float64), atol=1e-3)
    return sum(len(d) for d in ours)


def test_same_faces_as_facenet_pytorch(mtcnn, reference):
    frames = _frames()
    found = _assert_same(mtcnn.detect(frames), reference.detect(np.stack(frames), landmarks=True))
    assert found >= 8  # every face placed (the blank frame has none)


def test_same_faces_on_real_frames(real_extracted, mtcnn, reference):
    from aver.faces.pipeline import iter_sampled

    for _, _, video in real_extracted.values():
        frames = [f.to_ndarray(format="rgb24") for i, _, f in iter_sampled(video, 25) if i < 3]
        ours = mtcnn.detect(frames)
        assert _assert_same(ours, reference.detect(np.stack(frames), landmarks=True)) >= 3


def test_import_loads_neither_torchvision_nor_facenet_pytorch():
    code = (
        "import sys; from aver.faces.mtcnn import MtcnnDetector; MtcnnDetector();"
        "print(sorted(m for m in ('torchvision', 'facenet_pytorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _torchvision_like_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS, one box at a time (the definition st.nms vectorises)."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            ix = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            iy = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = ix * iy
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) <= thr:
                rest.append(j)
        order = rest
    return keep


def test_nms_keeps_what_greedy_suppression_keeps():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (200, 2))
    wh = rng.uniform(5, 40, (200, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.uniform(size=200).astype(np.float32)
    for thr in (0.3, 0.5, 0.7):
        assert st.nms(boxes, scores, thr) == _torchvision_like_nms(boxes, scores, thr)


def test_batched_nms_never_suppresses_across_images():
    box = torch.tensor([[0, 0, 10, 10, 0.9], [0, 0, 10, 10, 0.8], [0, 0, 10, 10, 0.7]])
    kept = st.batched_nms(box, torch.tensor([0, 1, 0]), 0.5)
    assert kept.tolist() == [0, 1]


def test_resampled_crops_equal_area_interpolation():
    rng = np.random.default_rng(1)
    images = torch.as_tensor(rng.integers(0, 256, (2, 3, 50, 70)), dtype=torch.float32)
    bounds = torch.tensor([[0, 50, 0, 70], [3, 20, 5, 9], [10, 11, 60, 70], [7, 48, 2, 43]])
    image_of = torch.tensor([0, 1, 1, 0])
    got = st.resample_crops(images, bounds, image_of, 24)
    for k, (y0, y1, x0, x1) in enumerate(bounds.tolist()):
        crop = images[image_of[k], :, y0:y1, x0:x1][None]
        want = F.interpolate(crop, size=(24, 24), mode="area")[0]
        torch.testing.assert_close(got[k], want, atol=1e-3, rtol=0)

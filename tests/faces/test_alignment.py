"""5-point similarity alignment on a real photo."""

from __future__ import annotations

import cv2
import numpy as np

from aver.faces.alignment import align_face, template, transform_points, umeyama
from tests.faces.conftest import _hopper


def _minimax_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """The smallest worst-point error any similarity transform src -> dst can reach."""
    from scipy.optimize import minimize

    def worst(p: np.ndarray) -> float:
        a, b, tx, ty = p
        m = np.array([[a, -b, tx], [b, a, ty]])
        return float(np.linalg.norm(transform_points(m, src) - dst, axis=1).max())

    m0 = umeyama(src, dst)
    start = np.array([m0[0, 0], m0[1, 0], m0[0, 2], m0[1, 2]])
    opts = {"maxiter": 20000, "xatol": 1e-9, "fatol": 1e-9}
    return float(minimize(worst, start, method="Nelder-Mead", options=opts).fun)


def _angle(m: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, (5, 2))
    a, s, t = np.radians(33.0), 1.7, np.array([12.0, -40.0])
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = umeyama(src, src @ rot.T + t)
    assert np.allclose(m[:, :2], rot, atol=1e-9)
    assert np.allclose(m[:, 2], t, atol=1e-7)
    # agrees with OpenCV's estimator on noisy points
    dst = src @ rot.T + t + rng.normal(0, 2, src.shape)
    ref, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    assert np.abs(transform_points(umeyama(src, dst), src) - transform_points(ref, src)).max() < 3


def test_alignment_maps_detected_landmarks_onto_the_template(mtcnn):
    photo = _hopper()
    marks = mtcnn.detect([photo])[0].landmarks[0]
    size = 112
    m = umeyama(marks, template(size))
    err = np.linalg.norm(transform_points(m, marks) - template(size), axis=1)
    # the landmarks land within 2 px of the template on average, the eyes each within 2 px
    assert err.mean() < 2.0, err
    assert err[:2].max() < 2.0, err
    # no similarity puts all five within 2 px of this face: her nose and mouth are not the
    # template's. Our fit's worst point is within 0.3 px of the best worst point possible.
    best_worst = _minimax_residual(marks, template(size))
    assert 2.0 < best_worst <= err.max() < best_worst + 0.3, (err, best_worst)

    face = align_face(photo, marks, size)
    assert face.shape == (size, size, 3) and face.dtype == np.uint8
    # the warped pixels agree with the transform: re-detected landmarks sit where it put them
    padded = cv2.copyMakeBorder(face, 56, 56, 56, 56, cv2.BORDER_REPLICATE)
    again = mtcnn.detect([padded])[0]
    assert len(again) >= 1
    redetected = again.landmarks[0] - 56
    assert np.linalg.norm(redetected - template(size), axis=1).mean() < 3.5


def test_alignment_undoes_in_plane_rotation_and_scale(mtcnn):
    photo = _hopper()
    h, w = photo.shape[:2]
    base = umeyama(mtcnn.detect([photo])[0].landmarks[0], template(112))
    rot = cv2.warpAffine(
        photo, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 0.8), (w, h),
        borderMode=cv2.BORDER_REFLECT,
    )  # fmt: skip
    m = umeyama(mtcnn.detect([rot])[0].landmarks[0], template(112))
    # OpenCV's positive angle turns the image counter-clockwise; alignment turns it back
    assert abs((_angle(m) - _angle(base)) - 25) < 2.0
    scale = np.hypot(*m[:, 0]) / np.hypot(*base[:, 0])
    assert abs(scale - 1 / 0.8) < 0.06


def test_red_patch_stays_red_through_the_warp():
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[80:120, 80:120] = (255, 0, 0)
    marks = template(112) + 44  # a face whose landmarks are the template shifted by 44 px
    face = align_face(frame, marks, 112)
    r, g, b = face[100 - 44, 100 - 44]  # the patch centre, shifted back by 44 px
    assert r > 200 and g < 30 and b < 30

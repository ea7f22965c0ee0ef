"""Talking-face video for the demo dataset, from real face photographs shipped in installed wheels.

Speakers are geometric/photometric variants of the photos (framing, scale, roll, flip, colour,
background). Each frame warps the speaker's still with smooth displacement fields placed around the
five MTCNN landmarks: a per-clip expression (smile: mouth corners up and out, cheeks up; frown:
mouth corners down, inner brows up) and a jaw opening that follows the audio's syllables, then
applies a small head motion (translation, roll, scale) and sensor noise. Label design: only happy
and sad carry an expression; neutral and angry show the same neutral face.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import BinaryIO, cast

import cv2
import numpy as np

from aver.errors import DataError

# Landmark order (MTCNN): image-left eye, image-right eye, nose, image-left mouth corner, right.
LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_L, MOUTH_R = range(5)
MARGIN = 0.15  # canvas margin around the output frame, fraction of the frame side


@dataclass(frozen=True)
class Photo:
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (5, 2) float32 pixel (x, y)


@dataclass(frozen=True)
class Appearance:
    """A speaker's still: a canvas larger than the frame (room for head motion) + landmarks."""

    canvas: np.ndarray  # (C, C, 3) uint8 RGB, C = size + 2 * margin
    landmarks: np.ndarray  # (5, 2) float32, canvas pixels
    margin: int
    size: int


def _photo_images() -> list[tuple[str, np.ndarray]]:
    """Real face photographs shipped by installed packages (RGB uint8)."""
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data

    out = []
    with cast(BinaryIO, matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as fh:
        out.append(
            ("grace_hopper", np.ascontiguousarray(matplotlib.image.imread(fh, format="jpg")))
        )
    out.append(("astronaut", np.ascontiguousarray(skimage.data.astronaut())))
    return out


@functools.lru_cache(maxsize=1)
def face_photos() -> tuple[Photo, ...]:
    """The source photos with landmarks from MTCNN (detected once, rounded to 1/4 pixel)."""
    from aver.faces.mtcnn import MtcnnDetector

    detector = MtcnnDetector(device="cpu")
    photos = []
    for name, image in _photo_images():
        found = detector.detect([image])[0]
        if not len(found):
            raise DataError(
                f"MTCNN found no face in the packaged photo {name!r}",
                fix="reinstall matplotlib/scikit-image/facenet-pytorch (their wheels ship it)",
            )
        best = int(np.argmax(found.scores))
        lm = np.round(np.asarray(found.landmarks[best], np.float64) * 4) / 4
        photos.append(Photo(name, image, lm.astype(np.float32)))
    return tuple(photos)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity transform mapping the two points `src` onto `dst`."""
    sv, dv = src[1] - src[0], dst[1] - dst[0]
    scale = np.linalg.norm(dv) / np.linalg.norm(sv)
    angle = np.arctan2(dv[1], dv[0]) - np.arctan2(sv[1], sv[0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return np.hstack([rot, (dst[0] - rot @ src[0])[:, None]])


def _face_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(centre, right unit vector, down unit vector, inter-ocular distance) of a face."""
    right = lm[RIGHT_EYE] - lm[LEFT_EYE]
    d = float(np.linalg.norm(right))
    right = right / d
    down = np.array([-right[1], right[0]])
    centre = 0.25 * (lm[LEFT_EYE] + lm[RIGHT_EYE] + lm[MOUTH_L] + lm[MOUTH_R])
    return centre, right, down, d


def make_appearance(photo: Photo, rng: np.random.Generator, *, flip: bool, size: int) -> Appearance:
    """Frame one photo as a distinct speaker: scale, offset, roll, flip, colour, background."""
    image, lm = photo.image, photo.landmarks.astype(np.float64).copy()
    if flip:
        image = np.ascontiguousarray(image[:, ::-1])
        lm[:, 0] = image.shape[1] - 1 - lm[:, 0]
        lm = lm[[RIGHT_EYE, LEFT_EYE, NOSE, MOUTH_R, MOUTH_L]]
    margin = round(MARGIN * size)
    side = size + 2 * margin
    # Target eye positions in canvas pixels: eye distance 0.19-0.24 of the frame, face centre
    # near the middle (RAVDESS-like framing), small roll.
    eye_d = rng.uniform(0.19, 0.24) * size
    roll = np.deg2rad(rng.uniform(-5, 5))
    centre = margin + size * np.array(
        [0.5 + rng.uniform(-0.06, 0.06), 0.5 + rng.uniform(-0.03, 0.06)]
    )
    right = np.array([np.cos(roll), np.sin(roll)])
    down = np.array([-right[1], right[0]])
    eye_mid = centre - down * 0.55 * eye_d  # eyes sit above the face centre
    dst = np.stack([eye_mid - right * eye_d / 2, eye_mid + right * eye_d / 2])
    shrink = eye_d / float(np.linalg.norm(lm[RIGHT_EYE] - lm[LEFT_EYE]))
    if shrink < 1:  # downscale with area averaging first (no aliasing), then place
        small = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        scale = np.array([small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]])
        image, lm = small, (lm + 0.5) * scale - 0.5
    m = _similarity(lm[[LEFT_EYE, RIGHT_EYE]], dst)
    canvas = cv2.warpAffine(
        image, m, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101
    )
    lm_c = lm @ m[:, :2].T + m[:, 2]
    canvas = _recolour(canvas, rng)
    canvas = _replace_background(canvas, lm_c, rng)
    return Appearance(canvas, lm_c.astype(np.float32), margin, size)


def _recolour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5, 5)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.7, 1.05), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.85, 1.12), 0, 255)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255
    return np.clip(255 * rgb ** rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)


def _replace_background(img: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend a per-speaker backdrop (gradient + texture) outside a soft ellipse around the head."""
    side = img.shape[0]
    centre, right, down, d = _face_axes(lm)
    head = centre - down * 0.35 * d
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    rel = np.stack([xx - head[0], yy - head[1]], -1)
    u, v = rel @ right / (1.45 * d), rel @ down / (2.0 * d)
    r = np.sqrt(u**2 + v**2)
    inside = np.clip((1.15 - r) / 0.3, 0, 1)[..., None]
    top, bottom = rng.uniform(30, 220, 3), rng.uniform(30, 220, 3)
    grad = top + (bottom - top) * (yy / side)[..., None]
    texture = cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), side / 25)
    texture = texture / (texture.std() + 1e-6) * rng.uniform(5, 20)
    backdrop = grad + texture[..., None]
    keep = rng.uniform(0.2, 0.45)  # how much of the original surroundings shows through
    alpha = inside + (1 - inside) * keep
    return np.clip(alpha * img + (1 - alpha) * backdrop, 0, 255).astype(np.uint8)


def _rbf_field(
    shape: tuple[int, int], points: list[tuple[np.ndarray, np.ndarray, float]]
) -> np.ndarray:
    """Sum of Gaussian displacement bumps: [(centre xy, displacement xy, sigma)] -> (H, W, 2)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w, 2), np.float32)
    for c, disp, sigma in points:
        g = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * sigma**2))
        field += g[..., None] * disp.astype(np.float32)
    return field


def expression_points(
    lm: np.ndarray, smile: float, frown: float, corner_jitter: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Landmark-anchored displacement bumps for a smile/frown of the given strengths (0 = none).

    `corner_jitter` (2, 2): per-clip idiosyncratic mouth-corner offsets in inter-ocular units,
    present in every class.
    """
    _, right, down, d = _face_axes(lm)
    pts: list[tuple[np.ndarray, np.ndarray, float]] = []
    for side, corner, eye in ((-1, MOUTH_L, LEFT_EYE), (1, MOUTH_R, RIGHT_EYE)):
        out = side * right  # pointing away from the face midline
        corner_disp = (
            smile * (-0.13 * down + 0.06 * out)
            + frown * (0.11 * down - 0.02 * out)
            + corner_jitter[0 if side < 0 else 1, 0] * out
            + corner_jitter[0 if side < 0 else 1, 1] * down
        ) * d
        pts.append((lm[corner], corner_disp, 0.22 * d))
        cheek = lm[eye] + (0.5 * down + 0.1 * out) * d
        pts.append((cheek, smile * -0.05 * down * d, 0.28 * d))
        lower_lid = lm[eye] + 0.13 * down * d
        pts.append((lower_lid, smile * -0.03 * down * d, 0.09 * d))
        inner_brow = lm[eye] + (-0.18 * out - 0.36 * down) * d
        pts.append((inner_brow, frown * (-0.08 * down - 0.02 * out) * d, 0.14 * d))
        outer_brow = lm[eye] + (0.28 * out - 0.3 * down) * d
        pts.append((outer_brow, frown * 0.035 * down * d, 0.14 * d))
    mouth = 0.5 * (lm[MOUTH_L] + lm[MOUTH_R])
    pts.append((mouth + 0.06 * down * d, frown * -0.03 * down * d, 0.12 * d))  # pout
    return pts


def jaw_points(lm: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Displacement bumps of a fully open jaw (lower lip and chin down, upper lip slightly up)."""
    _, _, down, d = _face_axes(lm)
    mouth = 0.5 * (lm[MOUTH_L] + lm[MOUTH_R])
    return [
        (mouth + 0.3 * down * d, 0.1 * down * d, 0.3 * d),
        (mouth - 0.08 * down * d, -0.02 * down * d, 0.1 * d),
    ]


@dataclass(frozen=True)
class Motion:
    """Per-frame head pose: translation (pixels), roll (degrees), scale factor."""

    dx: np.ndarray
    dy: np.ndarray
    roll: np.ndarray
    scale: np.ndarray


def draw_motion(rng: np.random.Generator, times: np.ndarray, size: int) -> Motion:
    """Smooth head motion: a few low-frequency sinusoids per degree of freedom."""

    def wave(amplitude: float) -> np.ndarray:
        out = np.zeros_like(times)
        for _ in range(3):
            f = rng.uniform(0.15, 1.2)
            out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * times + rng.uniform(0, 2 * np.pi))
        return amplitude * out / 2

    return Motion(dx=wave(0.03 * size), dy=wave(0.02 * size), roll=wave(3.0), scale=1 + wave(0.03))


def render_clip(
    appearance: Appearance,
    rng: np.random.Generator,
    *,
    smile: float,
    frown: float,
    opening: np.ndarray,
    times: np.ndarray,
) -> np.ndarray:
    """Frames (T, size, size, 3) uint8 RGB for one clip.

    `smile`/`frown`: expression strengths (0 = neutral face); `opening` (T,): jaw opening in [0, 1]
    per frame (from the audio's syllables); `times` (T,): frame times in seconds.

    Long: the per-clip draws from `rng` and the per-frame warp share one fixed draw order that
    the demo dataset (and the BENCHMARKS figures) depend on.
    """
    canvas, lm, size, margin = (
        appearance.canvas,
        appearance.landmarks,
        appearance.size,
        appearance.margin,
    )
    side = canvas.shape[0]
    corner_jitter = rng.normal(0, 0.01, (2, 2))
    expr = _rbf_field((side, side), expression_points(lm, smile, frown, corner_jitter))
    jaw = _rbf_field((side, side), jaw_points(lm))
    onset = rng.uniform(0.15, 0.5)
    course = (
        0.6
        + 0.4 * np.clip(times / onset, 0, 1)
        + 0.05 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * times + rng.uniform(0, 2 * np.pi))
    )
    motion = draw_motion(rng, times, size)
    noise_sigma = np.float32(rng.uniform(1.5, 3.0))
    gain = np.float32(rng.uniform(0.95, 1.05))

    centre, right, down, d = _face_axes(lm)
    mouth = 0.5 * (lm[MOUTH_L] + lm[MOUTH_R])
    mouth_w = float(np.linalg.norm(lm[MOUTH_R] - lm[MOUTH_L]))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    frames = np.empty((len(times), size, size, 3), np.uint8)
    interior = np.array([70, 25, 30], np.float32)
    box = np.full(2, 0.5 * mouth_w + 0.1 * d)  # half-extent of the painted mouth region
    for i in range(len(times)):
        disp = np.float32(course[i]) * expr + np.float32(opening[i]) * jaw
        warped = cv2.remap(
            canvas,
            xx - disp[..., 0],
            yy - disp[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        ).astype(np.float32)
        if opening[i] > 0.02:  # dark gap between the lips, painted inside a small box
            gap = mouth + down * (0.5 * 0.1 * d * opening[i])
            x0, y0 = (np.maximum(gap - box, 0)).astype(int)
            x1, y1 = (np.minimum(gap + box + 1, side)).astype(int)
            rel_x, rel_y = xx[y0:y1, x0:x1] - gap[0], yy[y0:y1, x0:x1] - gap[1]
            u = (rel_x * right[0] + rel_y * right[1]) / (0.32 * mouth_w)
            v = (rel_x * down[0] + rel_y * down[1]) / (0.05 * d * opening[i] + 1e-3)
            a = np.clip((1 - u**2 - v**2) * 2.5, 0, 0.85)[..., None]
            roi = warped[y0:y1, x0:x1]
            warped[y0:y1, x0:x1] = roi * (1 - a) + interior * a
        m = cv2.getRotationMatrix2D(
            (float(centre[0]), float(centre[1])), float(motion.roll[i]), float(motion.scale[i])
        )
        m[:, 2] += (motion.dx[i] - margin, motion.dy[i] - margin)
        frame = cv2.warpAffine(
            warped, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        grain = rng.standard_normal((size, size, 1), dtype=np.float32)  # luminance noise
        frame = frame * gain + noise_sigma * grain
        frames[i] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return frames

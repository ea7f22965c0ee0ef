"""Real photos (Grace Hopper, the astronaut) placed on a canvas and written as H.264 clips."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

FPS = 25
W, H = 320, 240


def _hopper() -> np.ndarray:
    from matplotlib import cbook, image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.ascontiguousarray(image.imread(fh, format="jpg")[:, :, :3])


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def face_crop(name: str) -> np.ndarray:
    """A head-and-shoulders crop of a real photo (RGB uint8); the face fills ~2/3 of its width."""
    if name == "hopper":
        return _hopper()[100:380, 140:390]
    if name == "astronaut":
        return _astronaut()[30:210, 150:300]
    raise KeyError(name)


def place(canvas: np.ndarray, img: np.ndarray, x: int, y: int, height: int) -> np.ndarray:
    """Paste `img` resized to `height` rows with its top-left corner at (x, y) (clipped)."""
    width = round(img.shape[1] * height / img.shape[0])
    small = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    x1, y1 = min(canvas.shape[1], x + width), min(canvas.shape[0], y + height)
    canvas[y:y1, x:x1] = small[: y1 - y, : x1 - x]
    return canvas


def blank(seed: int = 0) -> np.ndarray:
    """A textured background without faces."""
    rng = np.random.default_rng(seed)
    base = np.linspace(60, 180, W, dtype=np.float32)[None, :, None].repeat(H, 0).repeat(3, 2)
    return np.clip(base + rng.normal(0, 6, (H, W, 3)), 0, 255).astype(np.uint8)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int = FPS) -> Path:
    """H.264 yuv420p CFR mp4 from RGB frames (as the extract stage writes them)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def moving_face(n: int = 40, name: str = "hopper", height: int = 170) -> list[np.ndarray]:
    """One face drifting right by 2 px a frame."""
    face = face_crop(name)
    return [place(blank(), face, 40 + 2 * t, 30, height) for t in range(n)]


def two_faces(n: int, big: str, small: str) -> list[np.ndarray]:
    """`big` on the left (height 170), `small` on the right (height 80), both still."""
    frames = []
    for _ in range(n):
        f = place(blank(), face_crop(big), 10, 30, 170)
        frames.append(place(f, face_crop(small), 220, 60, 80))
    return frames


def gap_clip(n: int, gone: range) -> list[np.ndarray]:
    """A still face that is absent during the frames in `gone`."""
    face = face_crop("hopper")
    return [blank() if t in gone else place(blank(), face, 60, 30, 170) for t in range(n)]


def write_interim(root: Path, clips: dict[str, list[np.ndarray] | bytes]) -> Path:
    """data/interim layout: video/<clip_id>.mp4 plus manifest.csv (bytes = a broken file)."""
    rows = []
    for clip_id, frames in clips.items():
        path = root / "video" / f"{clip_id}.mp4"
        if isinstance(frames, bytes):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(frames)
            n = 0
        else:
            write_video(path, frames)
            n = len(frames)
        rows.append(
            {"clip_id": clip_id, "video": f"video/{clip_id}.mp4", "fps": FPS, "n_frames": n}
        )
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


@pytest.fixture(scope="session")
def mtcnn():
    from aver.faces.mtcnn import MtcnnDetector

    return MtcnnDetector(device="cpu")


@pytest.fixture
def make_interim(tmp_path: Path) -> Callable[[dict], Path]:
    return lambda clips: write_interim(tmp_path / "interim", clips)

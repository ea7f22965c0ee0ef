"""Every face encoder: random weights load strictly, (N, E) float16 from any crop size,
batches do not change a frame's embedding."""

from __future__ import annotations

import numpy as np
import pytest

from aver.config import CacheConfig
from aver.encoders import FACE_ENCODERS
from aver.encoders.face import FaceEncoder
from aver.encoders.loading import load_encoders
from aver.errors import DataError
from tests.encoders.conftest import SCRIPTED_DIM

NAMES = [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n for n in FACE_ENCODERS]


def _faces(n: int, side: int = 64) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_loads_through_config_and_embeds_each_frame(name, encoder_weights_file):
    cfg = CacheConfig(
        face_encoder=name, encoder_weights=str(encoder_weights_file(name)), encoder_device="cpu"
    )
    enc = load_encoders(cfg)
    assert enc.face is not None and enc.audio is None
    dim = FACE_ENCODERS[name].dim or SCRIPTED_DIM
    assert enc.face_dim == dim
    enc.face.batch = 2
    frames = _faces(3)
    out = enc.face.encode(frames)
    assert out.shape == (3, dim) and out.dtype == np.float16 and np.isfinite(out).all()
    one = enc.face.encode(frames[2:])
    np.testing.assert_allclose(out[2:].astype(np.float32), one.astype(np.float32), atol=1e-2)
    assert enc.face.encode(frames[:0]).shape == (0, dim)


def test_facenet_gives_unit_embeddings_not_logits(encoder_weights_file):
    enc = FaceEncoder(FACE_ENCODERS["facenet_casia"], encoder_weights_file("facenet_casia"))
    out = enc.encode(_faces(2, side=160)).astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-2)


def test_wrong_file_is_named(encoder_weights_file, tmp_path):
    with pytest.raises(DataError, match=r"resnet18-f37072fd\.pth.*do not fit facenet_vggface2"):
        FaceEncoder(FACE_ENCODERS["facenet_vggface2"], encoder_weights_file("resnet18"))
    bad = tmp_path / "face.pt"
    bad.write_bytes(b"not torchscript")
    with pytest.raises(DataError, match=r"face\.pt.*not a TorchScript model"):
        FaceEncoder(FACE_ENCODERS["torchscript"], bad)


def test_rejects_frames_that_are_not_rgb(encoder_weights_file):
    enc = FaceEncoder(FACE_ENCODERS["torchscript"], encoder_weights_file("torchscript"))
    with pytest.raises(ValueError, match="RGB"):
        enc.encode(np.zeros((2, 64, 64), np.uint8))

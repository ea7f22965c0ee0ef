"""InputDims: the model's input sizes read from the cache's per-clip array shapes."""

from __future__ import annotations

import pytest

from aver.errors import DataError
from aver.models import InputDims


@pytest.mark.parametrize(
    ("audio", "video", "expected"),
    [
        ((200, 64), (10, 64, 64, 3), InputDims(audio_dim=64, face_size=64)),  # log-mel + crops
        ((100, 13, 768), (10, 512), InputDims(768, audio_layers=13, video_dim=512)),
        ((100, 1, 1024), (10, 48, 48, 3), InputDims(1024, face_size=48, audio_layers=1)),
        ((200, 40), (25, 2048), InputDims(audio_dim=40, video_dim=2048)),  # mfcc + resnet
    ],
)
def test_from_shapes_reads_every_kind_of_array(audio, video, expected):
    dims = InputDims.from_shapes(audio, video)
    assert dims == expected
    assert dims.audio_embeddings == (len(audio) == 3)
    assert dims.video_embeddings == (len(video) == 2)
    assert dims.kwargs() == {
        "audio_dim": expected.audio_dim,
        "face_size": expected.face_size,
        "audio_layers": expected.audio_layers,
        "video_dim": expected.video_dim,
    }


@pytest.mark.parametrize(
    ("audio", "video", "which"),
    [
        ((200,), (10, 64, 64, 3), "audio"),
        ((200, 2, 3, 4), (10, 64, 64, 3), "audio"),
        ((200, 0, 768), (10, 512), "audio"),
        ((200, 64), (10, 64, 32, 3), "video"),  # not square
        ((200, 64), (10, 64, 64), "video"),
        ((200, 64), (10, 0), "video"),
    ],
)
def test_from_shapes_refuses_other_shapes_naming_the_cache(audio, video, which):
    with pytest.raises(DataError, match=rf"data/features/meta.json: {which} arrays of shape"):
        InputDims.from_shapes(audio, video, source="data/features/meta.json")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"audio_dim": 64},  # no video
        {"audio_dim": 64, "face_size": 64, "video_dim": 512},  # crops and embeddings
        {"audio_dim": 0, "face_size": 64},
        {"audio_dim": 64, "face_size": 64, "audio_layers": -1},
    ],
)
def test_inconsistent_dims_are_refused(kwargs):
    with pytest.raises(ValueError, match="input dims"):
        InputDims(**kwargs)


def test_input_dims_are_torch_free():
    """aver.config imports aver.models: the dims must not pull torch in."""
    import subprocess
    import sys

    code = "import sys, aver.models.spec; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

"""The encoder registry agrees with the libraries it names: files, URLs, layers, geometry."""

from __future__ import annotations

import numpy as np
import pytest

from aver.encoders import AUDIO_ENCODERS, FACE_ENCODERS


@pytest.mark.parametrize("name", sorted(AUDIO_ENCODERS))
def test_audio_spec_matches_its_torchaudio_bundle(name):
    import torchaudio.pipelines

    spec = AUDIO_ENCODERS[name]
    bundle = getattr(torchaudio.pipelines, spec.bundle)
    assert bundle._path == spec.filename
    assert bundle._normalize_waveform == spec.normalize_waveform
    assert bundle.sample_rate == spec.sample_rate
    assert bundle._params["encoder_num_layers"] == spec.n_layers
    assert bundle._params["encoder_embed_dim"] == spec.dim
    hop, field = 1, 1
    for _, kernel, stride in bundle._params["extractor_conv_layer_config"]:
        field += (kernel - 1) * hop
        hop *= stride
    assert (hop, field) == (spec.hop_samples, spec.receptive_field_samples)


def test_n_frames_is_the_conv_stack_output_length():
    import torchaudio.pipelines

    spec = AUDIO_ENCODERS["wavlm_base"]
    convs = torchaudio.pipelines.WAVLM_BASE._params["extractor_conv_layer_config"]
    for n in [0, 399, 400, 719, 720, 16000, 16001, 48123]:
        length = n
        for _, kernel, stride in convs:
            length = max((length - kernel) // stride + 1, 0)
        assert spec.n_frames(n) == length, n


def test_frame_times_are_receptive_field_centres():
    spec = AUDIO_ENCODERS["hubert_base"]
    t = spec.frame_times(3, start_s=1.0)
    assert t.dtype == np.float32
    np.testing.assert_allclose(t, [1.0125, 1.0325, 1.0525], atol=1e-6)
    assert spec.hop_s == 0.02 and spec.receptive_field_s == 0.025


def test_face_specs_name_the_library_files():
    import torchvision.models as tv

    assert FACE_ENCODERS["resnet18"].url == tv.ResNet18_Weights.IMAGENET1K_V1.url
    assert FACE_ENCODERS["resnet50"].url == tv.ResNet50_Weights.IMAGENET1K_V1.url
    assert FACE_ENCODERS["facenet_vggface2"].url.endswith("20180402-114759-vggface2.pt")
    assert FACE_ENCODERS["torchscript"].url is None

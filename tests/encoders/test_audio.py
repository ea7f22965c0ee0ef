"""Every audio encoder: random weights load strictly, shapes and frame count follow the spec,
a clip's frames do not depend on its padding, and they equal torchaudio's own forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aver.config import CacheConfig
from aver.encoders import AUDIO_ENCODERS
from aver.encoders.audio import AudioEncoder, build_model
from aver.encoders.loading import load_encoders
from aver.errors import DataError

LARGE = {"wav2vec2_large_lv60k", "hubert_large", "wavlm_large"}
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in AUDIO_ENCODERS]


def _clips(*lengths: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    waves = np.zeros((len(lengths), max(lengths)), np.float32)
    for i, n in enumerate(lengths):
        waves[i, :n] = 0.1 * rng.standard_normal(n)
    return waves, np.array(lengths)


@pytest.mark.parametrize("name", NAMES)
def test_loads_through_config_and_encodes_with_spec_geometry(name, encoder_weights_file):
    spec = AUDIO_ENCODERS[name]
    cfg = CacheConfig(
        audio_encoder=name,
        audio_layers=[spec.n_layers, 1],
        encoder_weights=str(encoder_weights_file(name)),
        encoder_device="cpu",
    )
    enc = load_encoders(cfg)
    assert enc.audio is not None and enc.face is None
    assert not any(p.requires_grad for p in enc.audio.model.parameters())
    waves, lengths = _clips(16000, 12345)
    out = enc.audio.encode(waves, lengths)
    t = spec.n_frames(16000)
    assert out.shape == (2, t, 2, spec.dim) == (2, *enc.audio_shape(16000))
    assert out.dtype == np.float16 and np.isfinite(out).all()
    assert len(spec.frame_times(t)) == t == 49
    real = spec.n_frames(12345)
    assert not out[1, real:].any() and out[1, :real].any()  # padding frames are 0


@pytest.mark.parametrize("name", ["wav2vec2_base", "wavlm_base"])
def test_padding_does_not_change_a_clips_frames(name, encoder_weights_file):
    spec = AUDIO_ENCODERS[name]
    enc = AudioEncoder(spec, encoder_weights_file(name), [1, 6, 12])
    waves, lengths = _clips(8000, 24000)
    batch = enc.encode(waves, lengths)
    alone = enc.encode(waves[:1, :8000], lengths[:1])
    n = spec.n_frames(8000)
    np.testing.assert_allclose(
        batch[0, :n].astype(np.float32), alone[0].astype(np.float32), atol=1e-2, rtol=1e-2
    )


@pytest.mark.parametrize(
    "name", ["hubert_base", pytest.param("wavlm_large", marks=pytest.mark.slow)]
)
def test_one_clip_equals_torchaudios_own_model(name, encoder_weights_file):
    """Same hidden states as the bundle's model (with its waveform layer norm) on one clip."""
    from torchaudio.pipelines._wav2vec2.utils import _extend_model

    spec = AUDIO_ENCODERS[name]
    path = encoder_weights_file(name)
    enc = AudioEncoder(spec, path, [2, spec.n_layers])
    ref = build_model(spec)
    ref.load_state_dict(torch.load(path, weights_only=True))
    ref = _extend_model(ref, normalize_waveform=spec.normalize_waveform).eval()
    waves, lengths = _clips(9000)
    with torch.inference_mode():
        hidden, _ = ref.extract_features(torch.from_numpy(waves))
    want = torch.stack([hidden[1], hidden[-1]], dim=2).numpy()
    got = enc.encode(waves, lengths).astype(np.float32)
    np.testing.assert_allclose(got, want, atol=2e-2, rtol=1e-2)


def test_weights_of_another_architecture_name_the_file(encoder_weights_file, tmp_path):
    wrong = tmp_path / "wavlm_base_plus.pth"
    wrong.symlink_to(encoder_weights_file("wav2vec2_base"))
    cfg = CacheConfig(audio_encoder="wavlm_base_plus", encoder_weights=str(wrong))
    with pytest.raises(DataError, match=r"wavlm_base_plus\.pth.*do not fit wavlm_base_plus"):
        load_encoders(cfg, device="cpu")


def test_too_short_a_batch_gives_no_frames(encoder_weights_file):
    enc = AudioEncoder(AUDIO_ENCODERS["wavlm_base"], encoder_weights_file("wavlm_base"), [3])
    out = enc.encode(np.zeros((2, 300), np.float32), np.array([300, 200]))
    assert out.shape == (2, 0, 1, 768) and out.dtype == np.float16

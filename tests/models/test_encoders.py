"""Front-end pieces: masked time pooling, masked BatchNorm, the face CNN's shapes, the
embedding projections and the choice of front-end from the input dims."""

from __future__ import annotations

import pytest
import torch

from aver.models import InputDims
from aver.models.encoders import (
    AudioConvEncoder,
    EmbeddingFrameEncoder,
    FaceFrameNet,
    LayerWeightedAudioEncoder,
    LocalFeatureExtractor,
    MaskedBatchNorm1d,
    VideoFrameEncoder,
    audio_frontend,
    masked_time_pool,
    video_frontend,
)
from aver.models.layers import masked_max, masked_mean

from .conftest import small_cfg


def test_masked_time_pool_keeps_partial_windows_and_ignores_padding():
    x = torch.tensor([[[1.0], [5.0], [2.0], [-9.0], [7.0]]])  # (1, 5, 1)
    mask = torch.tensor([[True, True, True, False, False]])
    times = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4]])
    pooled, m, t = masked_time_pool(x, mask, times, 2)
    assert pooled.shape == (1, 3, 1)
    assert m.tolist() == [[True, True, False]]
    assert pooled[0, :, 0].tolist() == [5.0, 2.0, 0.0]  # -9 is padding, never the max
    torch.testing.assert_close(t[0, :2], torch.tensor([0.05, 0.2]))  # mean time of real frames
    assert t[0, 2] > t[0, 1]  # padded windows keep increasing times


def test_masked_batchnorm_statistics_ignore_padding():
    torch.manual_seed(0)
    bn = MaskedBatchNorm1d(3)
    ref = torch.nn.BatchNorm1d(3)
    x = torch.randn(2, 3, 6)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    x[1, :, 4:] = 1e4  # garbage in the padding
    y = bn.train()(x, mask)
    real = torch.cat([x[0], x[1, :, :4]], dim=1).T  # (10, 3) real frames
    y_ref = ref.train()(real)
    torch.testing.assert_close(torch.cat([y[0], y[1, :, :4]], dim=1).T, y_ref)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)


def test_audio_encoder_downsamples_by_four():
    enc = AudioConvEncoder(10, 8)
    x, m, t = enc(torch.randn(2, 201, 10), torch.ones(2, 201, dtype=torch.bool),
                  torch.arange(201.0).expand(2, -1) / 100)  # fmt: skip
    assert x.shape == (2, 51, 8) and m.all() and t.shape == (2, 51)


def test_face_net_any_size_and_local_patches_cover_the_map():
    net = FaceFrameNet(8, 3, stride=2)
    for side in (16, 64, 112):
        assert net(torch.randn(2, 3, side, side)).shape == (2, 8)
    local = LocalFeatureExtractor(4, 3)
    x = torch.randn(1, 4, 7, 8)  # uneven patches
    assert local(x).shape == x.shape
    assert len(local.convs) == 9


def test_masked_pooling_helpers():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(x, mask).item() == 2.0
    assert masked_max(x, mask).item() == 3.0
    none = torch.zeros(1, 3, dtype=torch.bool)
    assert masked_max(x, none).item() == 0.0 and masked_mean(x, none).item() == 0.0


def _frames(b: int, t: int, rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(all-real mask, frame-centre times) of b clips of t frames at `rate` per second."""
    return torch.ones(b, t, dtype=torch.bool), ((torch.arange(t) + 0.5) / rate).expand(b, -1)


def test_layer_weights_start_uniform_and_learn():
    enc = LayerWeightedAudioEncoder(n_layers=5, dim=8, channels=4)
    torch.testing.assert_close(enc.layer_weights(), torch.full((5,), 0.2))
    mask, times = _frames(2, 10, 50.0)
    x, _, _ = enc(torch.randn(2, 10, 5, 8), mask, times)
    x.sum().backward()
    assert enc.layer_logits.grad is not None and enc.layer_logits.grad.abs().sum() > 0


def test_layer_weighted_sum_picks_a_dominant_layer():
    enc = LayerWeightedAudioEncoder(n_layers=3, dim=4, channels=4, pool=1)
    with torch.no_grad():
        enc.layer_logits.copy_(torch.tensor([0.0, 50.0, 0.0]))
    x = torch.randn(1, 6, 3, 4)
    mask, times = _frames(1, 6, 50.0)
    out, _, _ = enc(x, mask, times)
    only, _, _ = enc(x[:, :, 1:2].expand(-1, -1, 3, -1), mask, times)  # every layer = layer 1
    torch.testing.assert_close(out, only)


def test_layer_weighted_encoder_pools_50_to_25_tokens_per_second_and_zeros_padding():
    enc = LayerWeightedAudioEncoder(n_layers=2, dim=6, channels=4).eval()
    mask, times = _frames(2, 101, 50.0)
    mask = mask.clone()
    mask[0, 61:] = False  # clip 0: 61 real frames -> 31 real tokens
    x, m, t = enc(torch.randn(2, 101, 2, 6), mask, times)
    assert x.shape == (2, 51, 4) and m[1].all() and int(m[0].sum()) == 31
    assert (x[0, 31:] == 0).all()
    torch.testing.assert_close(t[1, :2], torch.tensor([0.02, 0.06]))  # 40 ms tokens, centred


def test_embedding_frame_encoder_projects_each_frame_and_zeros_padding():
    enc = EmbeddingFrameEncoder(dim=6, channels=5).eval()
    mask, times = _frames(2, 4, 5.0)
    mask = mask.clone()
    mask[0, 2:] = False
    video = torch.randn(2, 4, 6)
    video[0, 2:] = float("nan")  # whatever is in the padding
    x, m, t = enc(video, mask, times)
    assert x.shape == (2, 4, 5) and torch.equal(m, mask) and torch.equal(t, times)
    assert (x[0, 2:] == 0).all() and torch.isfinite(x).all()
    torch.testing.assert_close(x[1], torch.relu(enc.proj(video[1])))


@pytest.mark.parametrize(
    ("dims", "audio_cls", "video_cls"),
    [
        (InputDims(audio_dim=12, face_size=16), AudioConvEncoder, VideoFrameEncoder),
        (
            InputDims(audio_dim=768, audio_layers=13, video_dim=512),
            LayerWeightedAudioEncoder,
            EmbeddingFrameEncoder,
        ),
    ],
)
def test_frontends_are_chosen_from_the_input_dims(dims, audio_cls, video_cls):
    cfg = small_cfg(audio_channels=8, video_channels=6)
    audio, video = audio_frontend(cfg, dims), video_frontend(cfg, dims)
    assert type(audio) is audio_cls and audio.out_dim == 8
    assert type(video) is video_cls and video.out_dim == 6

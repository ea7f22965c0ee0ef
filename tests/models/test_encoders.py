"""Front-end pieces: masked time pooling, masked BatchNorm, the face CNN's shapes."""

from __future__ import annotations

import torch

from aver.models.encoders import (
    AudioConvEncoder,
    FaceFrameNet,
    LocalFeatureExtractor,
    MaskedBatchNorm1d,
    masked_time_pool,
)
from aver.models.layers import masked_max, masked_mean


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

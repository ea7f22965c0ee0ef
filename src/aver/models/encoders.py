"""Modality front-ends: from scratch (AVT-CA Sec. III-A: audio Conv1D blocks, a per-frame face
CNN) or projections of pretrained embeddings (a learned weighted sum of a speech encoder's
layers; per-frame face embeddings).

`audio_frontend` / `video_frontend` choose one from the input dims (the cache's array shapes).
Each returns `(features (B, T', C), mask (B, T'), times (B, T'))`. Padding never changes a real
clip's output: audio BatchNorm uses statistics of real frames only and padded frames are
excluded from pooling; the face CNN runs on real frames only; projections act per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aver.models.spec import InputDims, ModelConfigBase

Tokens = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over (B, C, T) whose training statistics ignore padded frames (float32 math)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.float()
        m = mask.unsqueeze(1).to(x.dtype)
        n = m.sum()
        # Tracked statistics (track_running_stats=True): never None here.
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        if self.training and n > 1:
            mean = (x * m).sum((0, 2)) / n
            var = ((x - mean[None, :, None]) ** 2 * m).sum((0, 2)) / n
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                mom = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), mom)
                self.running_var.lerp_(var.detach() * n / (n - 1), mom)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps)
        return y * self.weight[None, :, None] + self.bias[None, :, None]


def masked_time_pool(x: torch.Tensor, mask: torch.Tensor, times: torch.Tensor, p: int) -> Tokens:
    """Max-pool (B, T, C) over windows of p frames, ignoring padded frames.

    A window is real if any of its frames is; its time is the mean time of its real frames.
    The last window may be partial (like ceil_mode), so no real frame is dropped.
    """
    b, t, c = x.shape
    # pad by p - 1 frames, then keep n * p: no branch on t, so a traced or exported graph
    # (aver.export) pools any length as this does
    n = (t + p - 1) // p
    x = F.pad(x, (0, 0, 0, p - 1))[:, : n * p]
    mask = F.pad(mask, (0, p - 1), value=False)[:, : n * p]
    last = times[:, -1:]
    step = (times[:, -1:] - times[:, -2:-1]) if t > 1 else torch.zeros_like(last)
    more = last + step * torch.arange(1, p, device=x.device, dtype=times.dtype)
    times = torch.cat([times, more], dim=1)[:, : n * p]
    xw = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).view(b, n, p, c)
    mw = mask.view(b, n, p)
    new_mask = mw.any(-1)
    pooled = xw.max(dim=2).values
    pooled = torch.where(new_mask.unsqueeze(-1), pooled, torch.zeros_like(pooled))
    tw = times.view(b, n, p)
    mf = mw.to(times.dtype)
    real_t = (tw * mf).sum(-1) / mf.sum(-1).clamp(min=1.0)
    new_times = torch.where(new_mask, real_t, tw.mean(-1))
    return pooled, new_mask, new_times


class AudioBlock(nn.Module):
    """Conv1D(k) -> BatchNorm -> ReLU -> MaxPool(p) over time (AVT-CA Alg. 1, step 1)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, pool: int = 2):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.bn = MaskedBatchNorm1d(c_out)
        self.pool = pool

    def forward(self, x: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> Tokens:
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        h = self.conv(x.transpose(1, 2))
        h = F.relu(self.bn(h, mask)).transpose(1, 2)
        return masked_time_pool(h, mask, times, self.pool)


class AudioConvEncoder(nn.Module):
    """Two AudioBlocks: (B, Ta, F) -> (B, ceil(Ta/4), C); times are window centres."""

    def __init__(self, in_dim: int, channels: int, kernel: int = 3, pool: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                AudioBlock(in_dim, channels, kernel, pool),
                AudioBlock(channels, channels, kernel, pool),
            ]
        )
        self.out_dim = channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> Tokens:
        for block in self.blocks:
            x, mask, times = block(x, mask, times)
        return x, mask, times


class ChannelAttention(nn.Module):
    """Per-channel weights: GAP -> FC -> sigmoid -> FC -> sigmoid (AVT-CA Sec. III-A2)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(x.mean(dim=(2, 3))))))
        return w[:, :, None, None]


class SpatialAttention(nn.Module):
    """One map by Conv2D, softmax over H*W; scaled by H*W so a uniform map is the identity."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        z = self.conv(x).view(n, 1, h * w)
        return (torch.softmax(z, dim=-1) * (h * w)).view(n, 1, h, w)


class LocalFeatureExtractor(nn.Module):
    """Cut the map into n x n patches, one Conv2D per patch, reassembled (added by the caller)."""

    def __init__(self, channels: int, n: int):
        super().__init__()
        self.n = n
        self.convs = nn.ModuleList(
            [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(n * n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = []
        convs = iter(self.convs)
        for band in torch.tensor_split(x, self.n, dim=2):
            rows.append(
                torch.cat([next(convs)(p) for p in torch.tensor_split(band, self.n, dim=3)], dim=3)
            )
        return torch.cat(rows, dim=2)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: pointwise expand -> depthwise 3x3 -> pointwise project, + input."""

    def __init__(self, channels: int, expand: int = 2):
        super().__init__()
        hidden = channels * expand
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class FaceFrameNet(nn.Module):
    """One face frame (N, 3, H, W) -> (N, C) (AVT-CA Sec. III-A2, Alg. 1 step 2).

    `stride` > 1 strides the first conv (the paper uses 1) to cut CPU cost on larger faces.
    """

    def __init__(self, channels: int, patches: int, stride: int = 1):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=stride, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.channel = ChannelAttention(channels)
        self.spatial = SpatialAttention(channels)
        self.local = LocalFeatureExtractor(channels, patches)
        self.blocks = nn.Sequential(InvertedResidual(channels), InvertedResidual(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.stem(x)
        v = v * self.channel(v) * self.spatial(v)
        v = v + self.local(v)
        return self.blocks(v).mean(dim=(2, 3))


class VideoFrameEncoder(nn.Module):
    """(B, Tv, 3, H, W) -> (B, Tv, C): FaceFrameNet on real frames only, zeros at padding."""

    def __init__(self, channels: int, patches: int, stride: int = 1):
        super().__init__()
        self.frame = FaceFrameNet(channels, patches, stride)
        self.out_dim = channels

    def forward(self, video: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> Tokens:
        b, t = mask.shape
        if not mask.any():
            return video.new_zeros(b, t, self.out_dim), mask, times
        feats = self.frame(video[mask])
        out = feats.new_zeros(b, t, self.out_dim).index_put((mask,), feats)
        return out, mask, times


class LayerWeightedAudioEncoder(nn.Module):
    """(B, Ta, L, D) encoder layers -> (B, ceil(Ta/pool), C).

    A softmax-weighted sum over the L layers (weights start equal, as in SUPERB), then
    Linear(D -> C) -> ReLU -> dropout, zeros at padding, then masked max-pool over `pool` frames
    (50 -> 25 tokens/s at pool=2, the conv front-end's token rate).
    """

    def __init__(self, n_layers: int, dim: int, channels: int, pool: int = 2, dropout: float = 0.0):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        self.proj = nn.Linear(dim, channels)
        self.drop = nn.Dropout(dropout)
        self.pool = pool
        self.out_dim = channels

    def layer_weights(self) -> torch.Tensor:
        """The (L,) softmax weights of the layers."""
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> Tokens:
        want = (self.layer_logits.numel(), self.proj.in_features)
        if x.dim() != 4 or tuple(x.shape[2:]) != want:
            raise ValueError(
                f"audio input of shape {tuple(x.shape)}, expected (B, T, {want[0]}, {want[1]}): "
                "the model was built for another audio encoder or layer choice"
            )
        h = (x * self.layer_weights().to(x.dtype)[:, None]).sum(dim=2)
        h = self.drop(F.relu(self.proj(h))).masked_fill(~mask.unsqueeze(-1), 0.0)
        return masked_time_pool(h, mask, times, self.pool)


class EmbeddingFrameEncoder(nn.Module):
    """(B, Tv, E) face embeddings -> (B, Tv, C): Linear -> ReLU -> dropout, zeros at padding."""

    def __init__(self, dim: int, channels: int, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(dim, channels)
        self.drop = nn.Dropout(dropout)
        self.out_dim = channels

    def forward(self, video: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> Tokens:
        if video.dim() != 3 or video.shape[-1] != self.proj.in_features:
            raise ValueError(
                f"video input of shape {tuple(video.shape)}, expected (B, T, "
                f"{self.proj.in_features}): the model was built for another face encoder"
            )
        h = self.drop(F.relu(self.proj(video)))
        return h.masked_fill(~mask.unsqueeze(-1), 0.0), mask, times


def audio_frontend(cfg: ModelConfigBase, dims: InputDims) -> nn.Module:
    """The audio front-end for `dims`: encoder layers -> LayerWeightedAudioEncoder, features ->
    AudioConvEncoder; both give `cfg.audio_channels` at 25 tokens/s."""
    if dims.audio_embeddings:
        return LayerWeightedAudioEncoder(
            dims.audio_layers, dims.audio_dim, cfg.audio_channels, dropout=cfg.dropout
        )
    return AudioConvEncoder(dims.audio_dim, cfg.audio_channels)


def video_frontend(cfg: ModelConfigBase, dims: InputDims) -> nn.Module:
    """The video front-end for `dims`: embeddings -> EmbeddingFrameEncoder, crops ->
    VideoFrameEncoder; both give `cfg.video_channels` per frame."""
    if dims.video_embeddings:
        return EmbeddingFrameEncoder(dims.video_dim, cfg.video_channels, dropout=cfg.dropout)
    return VideoFrameEncoder(cfg.video_channels, cfg.video_patches, cfg.video_stride)

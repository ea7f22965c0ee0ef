"""Unimodal baselines and late fusion.

audio_only / video_only: the front-end of one modality (AVT-CA's, or an embedding projection) ->
Linear to d -> pre-LN Transformer blocks (rotary positions per `cfg.position`; for one modality
index and time RoPE differ only in scale) -> LayerNorm -> masked pooling -> Linear.
late_fusion: the average of an audio_only and a video_only model's logits, trained jointly
(with `unimodal_weight > 0` each branch also gets its own cross-entropy loss); a clip without
one modality (its mask all False) gets the other branch's logits alone.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from aver.models.encoders import audio_frontend, video_frontend
from aver.models.layers import (
    EncoderBlock,
    check_heads,
    masked_pool,
    modality_present,
    pool_width,
)
from aver.models.output import ModelOutput
from aver.models.rotary import rope_frequencies, sequence_rotation
from aver.models.spec import InputDims, TokenModelConfig

_KEYS = {
    "audio": ("audio", "audio_mask", "audio_times"),
    "video": ("video", "video_mask", "video_times"),
}


class UnimodalNet(nn.Module):
    """One modality's encoder and Transformer; reads its three keys from the batch."""

    def __init__(self, modality: str, encoder: nn.Module, n_classes: int, cfg: TokenModelConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.keys = _KEYS[modality]
        self.d_head = check_heads(d, cfg.heads)
        if cfg.position != "none":
            rope_frequencies(self.d_head, cfg.rope_base)
        self.encoder = encoder
        self.proj = nn.Linear(cast(int, encoder.out_dim), d)
        self.blocks = nn.ModuleList(
            [EncoderBlock(d, cfg.heads, cfg.dropout) for _ in range(cfg.layers)]
        )
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(pool_width(d, cfg.pool), n_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        x, mask, times = self.encoder(*(batch[k] for k in self.keys))
        rot = sequence_rotation(
            self.cfg.position,
            [(mask, times)],
            d_head=self.d_head,
            base=self.cfg.rope_base,
            tau_s=self.cfg.tau_s,
        )
        x = self.proj(x)
        for block in self.blocks:
            x = block(x, mask, rot)
        pooled = masked_pool(self.norm(x), mask, self.cfg.pool)
        return ModelOutput(self.head(self.drop(pooled)))


def audio_only(cfg: TokenModelConfig, *, n_classes: int, dims: InputDims) -> UnimodalNet:
    """Audio branch alone."""
    return UnimodalNet("audio", audio_frontend(cfg, dims), n_classes, cfg)


def video_only(cfg: TokenModelConfig, *, n_classes: int, dims: InputDims) -> UnimodalNet:
    """Face branch alone."""
    return UnimodalNet("video", video_frontend(cfg, dims), n_classes, cfg)


class LateFusion(nn.Module):
    """Average of the unimodal models' logits over the modalities a clip has."""

    def __init__(self, cfg: TokenModelConfig, *, n_classes: int, dims: InputDims):
        super().__init__()
        self.audio = audio_only(cfg, n_classes=n_classes, dims=dims)
        self.video = video_only(cfg, n_classes=n_classes, dims=dims)
        self.unimodal_weight = cfg.unimodal_weight

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        branches = {"audio": self.audio(batch).logits, "video": self.video(batch).logits}
        present = modality_present(batch["audio_mask"], batch["video_mask"])
        weights = {m: present[m].unsqueeze(1).to(branches[m].dtype) for m in branches}
        total = weights["audio"] * branches["audio"] + weights["video"] * branches["video"]
        return ModelOutput(
            total / (weights["audio"] + weights["video"]).clamp(min=1.0),
            branch_logits=branches,
            branch_weight=self.unimodal_weight,
            branch_present=present,
        )

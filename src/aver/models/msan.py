"""MSAN: one Transformer over audio and video tokens in a shared space, TaRoPE, CTM loss.

Front-ends (conv, or embedding projections, per the input dims) -> linear projections to d -> a
learned modality embedding -> concatenated tokens -> pre-LN Transformer blocks whose self-attention
sees all tokens (rotary positions per `position`) -> final LayerNorm -> masked pooling per modality,
concatenated -> Linear. With `ctm_weight > 0` a projection head on the audio and video outputs adds
the weighted CTM loss to `aux_losses["ctm"]`. With `unimodal_weight > 0` a classifier on each
modality's projected tokens (before the shared encoder) adds its weighted cross-entropy to the loss.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from aver.models.encoders import audio_frontend, video_frontend
from aver.models.layers import (
    BranchHeads,
    EncoderBlock,
    check_heads,
    masked_pool,
    modality_present,
    pool_width,
)
from aver.models.losses import CTMHead, ctm_loss
from aver.models.msan_config import MSANConfig
from aver.models.output import ModelOutput
from aver.models.rotary import rope_frequencies, sequence_rotation
from aver.models.spec import InputDims


class MSANCore(nn.Module):
    """The shared-space encoder and classifier on token sequences (B, T, F) of each modality."""

    def __init__(self, audio_dim: int, video_dim: int, n_classes: int, cfg: MSANConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.d_head = check_heads(d, cfg.heads)
        if cfg.position != "none":
            rope_frequencies(self.d_head, cfg.rope_base)  # validates an even head width
        self.proj_a = nn.Linear(audio_dim, d)
        self.proj_v = nn.Linear(video_dim, d)
        self.modality = nn.Parameter(torch.randn(2, d) * 0.02)
        self.blocks = nn.ModuleList(
            [EncoderBlock(d, cfg.heads, cfg.dropout) for _ in range(cfg.layers)]
        )
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * pool_width(d, cfg.pool), n_classes)
        self.ctm = CTMHead(d, cfg.ctm_dim) if cfg.ctm_weight > 0 else None
        self.branches = BranchHeads(d, n_classes, cfg.pool) if cfg.unimodal_weight > 0 else None

    def encode(
        self,
        a: torch.Tensor,
        a_mask: torch.Tensor,
        a_times: torch.Tensor,
        v: torch.Tensor,
        v_mask: torch.Tensor,
        v_times: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs for the audio (B, Ta, d) and video (B, Tv, d) tokens."""
        return self._encode(self.proj_a(a), a_mask, a_times, self.proj_v(v), v_mask, v_times)

    def _encode(
        self,
        pa: torch.Tensor,
        a_mask: torch.Tensor,
        a_times: torch.Tensor,
        pv: torch.Tensor,
        v_mask: torch.Tensor,
        v_times: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ta = pa.shape[1]
        x = torch.cat([pa + self.modality[0], pv + self.modality[1]], 1)
        mask = torch.cat([a_mask, v_mask], dim=1)
        rot = sequence_rotation(
            self.cfg.position,
            [(a_mask, a_times), (v_mask, v_times)],
            d_head=self.d_head,
            base=self.cfg.rope_base,
            tau_s=self.cfg.tau_s,
        )
        for block in self.blocks:
            x = block(x, mask, rot)
        x = self.norm(x)
        return x[:, :ta], x[:, ta:]

    def forward(
        self,
        a: torch.Tensor,
        a_mask: torch.Tensor,
        a_times: torch.Tensor,
        v: torch.Tensor,
        v_mask: torch.Tensor,
        v_times: torch.Tensor,
    ) -> ModelOutput:
        pa, pv = self.proj_a(a), self.proj_v(v)
        ha, hv = self._encode(pa, a_mask, a_times, pv, v_mask, v_times)
        pooled = torch.cat(
            [masked_pool(ha, a_mask, self.cfg.pool), masked_pool(hv, v_mask, self.cfg.pool)], -1
        )
        logits = self.head(self.drop(pooled))
        aux: dict[str, torch.Tensor] = {}
        if self.ctm is not None:
            loss = ctm_loss(
                self.ctm(ha),
                a_mask,
                a_times,
                self.ctm(hv),
                v_mask,
                v_times,
                delta_s=self.cfg.ctm_delta_s,
                temperature=self.cfg.ctm_temperature,
            )
            aux["ctm"] = self.cfg.ctm_weight * loss
        branches = self.branches(pa, a_mask, pv, v_mask) if self.branches is not None else {}
        return ModelOutput(
            logits,
            aux,
            branch_logits=branches,
            branch_weight=self.cfg.unimodal_weight,
            branch_present=modality_present(a_mask, v_mask) if branches else {},
        )


class MSAN(nn.Module):
    """Audio/video front-ends + MSANCore on the model batch."""

    def __init__(self, cfg: MSANConfig, *, n_classes: int, dims: InputDims):
        super().__init__()
        self.audio = audio_frontend(cfg, dims)
        self.video = video_frontend(cfg, dims)
        self.core = MSANCore(
            cast(int, self.audio.out_dim), cast(int, self.video.out_dim), n_classes, cfg
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        a, am, at = self.audio(batch["audio"], batch["audio_mask"], batch["audio_times"])
        v, vm, vt = self.video(batch["video"], batch["video_mask"], batch["video_times"])
        return self.core(a, am, at, v, vm, vt)

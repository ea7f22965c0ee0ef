"""AVT-CA (Sec. III, Algorithm 1): conv front-ends (or embedding projections, per the input
dims), intermediate transformer fusion (IT), cross-self-attention (CT), max-pool per stream,
element-wise sum, Linear.

Variants (Table V): it1 / it4 = `layers` IT blocks with 1 / 4 heads and no CT; ct1 / ct4 = the
CT block alone with 1 / 4 heads; full = IT-4 blocks then CT-4. The variant fixes the heads and,
as in the paper, no positional encoding is added. With `unimodal_weight > 0` (not in the paper)
a classifier on each stream's projected tokens, before fusion, adds its weighted cross-entropy
to the loss.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from aver.models.avtca_config import VARIANTS, AVTCAConfig
from aver.models.encoders import audio_frontend, video_frontend
from aver.models.layers import (
    BranchHeads,
    MultiHeadAttention,
    PostNormAttention,
    PostNormFeedForward,
    masked_max,
    modality_present,
)
from aver.models.output import ModelOutput
from aver.models.spec import InputDims


class IntermediateBlock(nn.Module):
    """One IT block per branch: self-attention, cross-modal attention (audio queries video and
    video queries audio, from the same inputs), FFN (d_ff = 4d, GELU, dropout); each sub-layer
    residual + LayerNorm (Sec. III-B)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.self_a = PostNormAttention(d, heads, dropout)
        self.self_v = PostNormAttention(d, heads, dropout)
        self.cross_a = PostNormAttention(d, heads, dropout)
        self.cross_v = PostNormAttention(d, heads, dropout)
        self.ffn_a = PostNormFeedForward(d, dropout)
        self.ffn_v = PostNormFeedForward(d, dropout)

    def forward(
        self, a: torch.Tensor, am: torch.Tensor, v: torch.Tensor, vm: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a, v = self.self_a(a, a, am), self.self_v(v, v, vm)
        a, v = self.cross_a(a, v, vm), self.cross_v(v, a, am)
        return self.ffn_a(a), self.ffn_v(v)


class CrossSelfAttention(nn.Module):
    """CT (Sec. III-C/D): o_self = LN(x + SelfAttn(x)) per stream, then
    o~_audio = o_self_audio + CrossAttn(o_self_audio -> o_self_video), and symmetrically."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.self_a = PostNormAttention(d, heads, dropout)
        self.self_v = PostNormAttention(d, heads, dropout)
        self.av = MultiHeadAttention(d, heads, dropout)
        self.va = MultiHeadAttention(d, heads, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, a: torch.Tensor, am: torch.Tensor, v: torch.Tensor, vm: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sa, sv = self.self_a(a, a, am), self.self_v(v, v, vm)
        return sa + self.drop(self.av(sa, sv, vm)), sv + self.drop(self.va(sv, sa, am))


class AVTCA(nn.Module):
    """AVT-CA on the model batch; `cfg.variant` selects the Table V ablation."""

    def __init__(self, cfg: AVTCAConfig, *, n_classes: int, dims: InputDims):
        super().__init__()
        d = cfg.d_model
        it_heads, ct_heads = VARIANTS[cfg.variant]
        self.audio = audio_frontend(cfg, dims)
        self.video = video_frontend(cfg, dims)
        self.proj_a = nn.Linear(cast(int, self.audio.out_dim), d)
        self.proj_v = nn.Linear(cast(int, self.video.out_dim), d)
        self.it = nn.ModuleList(
            [IntermediateBlock(d, it_heads, cfg.dropout) for _ in range(cfg.layers)]
            if it_heads
            else []
        )
        self.ct = CrossSelfAttention(d, ct_heads, cfg.dropout) if ct_heads else None
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, n_classes)
        self.unimodal_weight = cfg.unimodal_weight
        self.branches = BranchHeads(d, n_classes, "max") if cfg.unimodal_weight > 0 else None

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        a, am, _ = self.audio(batch["audio"], batch["audio_mask"], batch["audio_times"])
        v, vm, _ = self.video(batch["video"], batch["video_mask"], batch["video_times"])
        a, v = self.proj_a(a), self.proj_v(v)
        branches = self.branches(a, am, v, vm) if self.branches is not None else {}
        for block in self.it:
            a, v = block(a, am, v, vm)
        if self.ct is not None:
            a, v = self.ct(a, am, v, vm)
        fused = masked_max(a, am) + masked_max(v, vm)
        return ModelOutput(
            self.head(self.drop(fused)),
            branch_logits=branches,
            branch_weight=self.unimodal_weight,
            branch_present=modality_present(am, vm) if branches else {},
        )

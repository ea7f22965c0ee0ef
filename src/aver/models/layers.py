"""Attention blocks and masked pooling shared by the models.

Masks are bool, True where a position is real. Padded keys never receive attention weight;
a query whose keys are all padding gets a zero attention output (not NaN), and pooling over no
real position gives zero: a clip without one modality (all its mask False) stays finite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aver.errors import ConfigError
from aver.models.rotary import apply_rotary

Rotation = tuple[torch.Tensor, torch.Tensor]


def check_heads(d_model: int, heads: int) -> int:
    """Head width d_k = d_model / heads; ConfigError when it does not divide."""
    if d_model % heads:
        raise ConfigError(
            f"d_model={d_model} is not divisible by heads={heads}",
            fix="set train.model.d_model to a multiple of the number of heads",
        )
    return d_model // heads


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, T, D) over real positions -> (B, D); zero for a row with none."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of x (B, T, D) over real positions -> (B, D); zero for a row with none."""
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    out = filled.max(dim=1).values
    return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))


def masked_pool(x: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """'mean' | 'max' -> (B, D); 'meanmax' -> (B, 2D) (both, concatenated)."""
    if how == "mean":
        return masked_mean(x, mask)
    if how == "max":
        return masked_max(x, mask)
    if how == "meanmax":
        return torch.cat([masked_mean(x, mask), masked_max(x, mask)], dim=-1)
    raise ConfigError(f"unknown pooling {how!r}", fix="use mean, max or meanmax")


def pool_width(d: int, how: str) -> int:
    """Output width of masked_pool for feature width d."""
    return 2 * d if how == "meanmax" else d


def modality_present(a_mask: torch.Tensor, v_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B,) bool per modality: the clip has at least one real audio / video position."""
    return {"audio": a_mask.any(1), "video": v_mask.any(1)}


class BranchHeads(nn.Module):
    """One classifier per modality on its pooled pre-fusion tokens (unimodal supervision)."""

    def __init__(self, d: int, n_classes: int, pool: str):
        super().__init__()
        self.pool = pool
        self.audio = nn.Linear(pool_width(d, pool), n_classes)
        self.video = nn.Linear(pool_width(d, pool), n_classes)

    def forward(
        self, a: torch.Tensor, a_mask: torch.Tensor, v: torch.Tensor, v_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {
            "audio": self.audio(masked_pool(a, a_mask, self.pool)),
            "video": self.video(masked_pool(v, v_mask, self.pool)),
        }


class MultiHeadAttention(nn.Module):
    """Multi-head attention, queries from x and keys/values from y (self-attention if y is x).

    Optional rotary embeddings rotate queries and keys per head (RoPE / TaRoPE).
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.d_head = check_heads(d_model, heads)
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.d_head).transpose(1, 2)

    def _qk(
        self, x: torch.Tensor, y: torch.Tensor, q_rot: Rotation | None, k_rot: Rotation | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, k = self._split(self.q(x)), self._split(self.k(y))
        if q_rot is not None:
            q = apply_rotary(q, *q_rot)
        if k_rot is not None:
            k = apply_rotary(k, *k_rot)
        return q, k

    def scores(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        q_rot: Rotation | None = None,
        k_rot: Rotation | None = None,
    ) -> torch.Tensor:
        """Pre-softmax scores q.k / sqrt(d_k), (B, heads, Tq, Tk) (for tests and inspection)."""
        y = x if y is None else y
        q, k = self._qk(x, y, q_rot, k_rot)
        return q @ k.transpose(-1, -2) / self.d_head**0.5

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        q_rot: Rotation | None = None,
        k_rot: Rotation | None = None,
    ) -> torch.Tensor:
        y = x if y is None else y
        q, k = self._qk(x, y, q_rot, k_rot)
        v = self._split(self.v(y))
        attn_mask = None
        has_key = None
        if key_mask is not None:
            has_key = key_mask.any(1)
            attn_mask = (key_mask | ~has_key.unsqueeze(1))[:, None, None, :]
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        o = o.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        if has_key is not None:
            o = o * has_key[:, None, None].to(o.dtype)
        return self.out(o)


class FeedForward(nn.Module):
    """Linear(d, 4d) -> GELU -> Dropout -> Linear(4d, d) (AVT-CA eq. 5)."""

    def __init__(self, d_model: int, dropout: float = 0.0, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, mult * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mult * d_model, d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PostNormAttention(nn.Module):
    """x <- LayerNorm(x + Dropout(Attention(x, y))) (AVT-CA's residual + LayerNorm, eq. 4)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.norm(x + self.drop(self.attn(x, y, key_mask)))


class PostNormFeedForward(nn.Module):
    """x <- LayerNorm(x + Dropout(FFN(x)))."""

    def __init__(self, d_model: int, dropout: float = 0.0):
        super().__init__()
        self.ffn = FeedForward(d_model, dropout)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.drop(self.ffn(x)))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm Transformer encoder block with optional rotary self-attention (MSAN)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, rot: Rotation | None = None
    ) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, mask, rot, rot))
        return x + self.drop(self.ffn(self.norm2(x)))

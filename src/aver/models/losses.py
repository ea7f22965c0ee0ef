"""Cross-Temporal Matching (CTM) loss (MSAN): InfoNCE between temporally close audio/video tokens.

For an audio token i at time t_i, the video tokens j of the same clip with |t_i - s_j| <= delta
are positives; every other real video token of the batch (same clip or not) is a negative.
With several positives the numerator sums over them (multi-positive InfoNCE):

    L_a->v(i) = -log( sum_{j in P(i)} exp(s_ij / T) / sum_{j} exp(s_ij / T) )

and symmetrically for video anchors over audio tokens. Each direction is averaged over anchors
that have at least one positive; the loss is the mean of the two directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aver.geometry import TIME_EPS_S as _EPS_S  # tolerance on |t - s| <= delta (float times)


class CTMHead(nn.Module):
    """Small projection head, L2-normalised: Linear -> GELU -> Linear -> normalise."""

    def __init__(self, d_model: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)


def ctm_loss(
    za: torch.Tensor,
    a_mask: torch.Tensor,
    a_times: torch.Tensor,
    zv: torch.Tensor,
    v_mask: torch.Tensor,
    v_times: torch.Tensor,
    *,
    delta_s: float,
    temperature: float,
) -> torch.Tensor:
    """CTM loss from L2-normalised token embeddings za (B, Ta, D) and zv (B, Tv, D).

    Padded tokens take no part. Positives (same clip) come from a per-clip (B, Ta, Tv) product;
    only the denominators need all real audio x video pairs of the batch. Returns a zero (still
    attached to the graph) when no audio token has a video token within delta.
    """
    near = (a_times[:, :, None].float() - v_times[:, None, :].float()).abs() <= delta_s + _EPS_S
    pos = near & a_mask[:, :, None] & v_mask[:, None, :]  # (B, Ta, Tv)
    local = torch.bmm(za, zv.transpose(1, 2)) / temperature
    full = (za[a_mask] @ zv[v_mask].T) / temperature  # (Na, Nv): every real pair of the batch
    parts = []
    # audio anchors: positives among their clip's video tokens, all batch video tokens below
    has_a = pos.any(2)[a_mask]
    if has_a.any():
        num = local.masked_fill(~pos, float("-inf"))[a_mask][has_a].logsumexp(1)
        parts.append((full[has_a].logsumexp(1) - num).mean())
    has_v = pos.any(1)[v_mask]
    if has_v.any():
        pos_t = pos.transpose(1, 2)
        num = local.transpose(1, 2).masked_fill(~pos_t, float("-inf"))[v_mask][has_v].logsumexp(1)
        parts.append((full[:, has_v].logsumexp(0) - num).mean())
    if not parts:
        return (za.sum() + zv.sum()) * 0.0
    return torch.stack(parts).mean()

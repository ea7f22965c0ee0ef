"""Rotary position embeddings: by token index (RoPE) or by timestamp (TaRoPE).

Both rotate each (even, odd) feature pair k of a query/key head by `omega_k * p`, with
`omega_k = base ** (-2k / d_head)`. Index RoPE uses p = the token's index within its modality;
TaRoPE uses p = t / tau (t the token's time in seconds, tau a shared time unit), so tokens of
different frame rates that occur at the same instant get the same rotation and every score
q(t1).k(t2) depends only on t1 - t2.
"""

from __future__ import annotations

import torch

from aver.errors import ConfigError


def rope_frequencies(d_head: int, base: float, device: torch.device | None = None) -> torch.Tensor:
    """omega_k = base^(-2k/d_head), k = 0 .. d_head/2 - 1 (float64)."""
    if d_head % 2:
        raise ConfigError(
            f"rotary embeddings need an even head width, got d_head={d_head}",
            fix="choose train.model.d_model and heads so that d_model / heads is even",
        )
    k = torch.arange(d_head // 2, dtype=torch.float64, device=device)
    return base ** (-2.0 * k / d_head)


def rope_angles(
    positions: torch.Tensor, d_head: int, base: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of the rotation angles, each (B, T, d_head/2), from positions (B, T).

    Angles are formed in float64 so that large positions (long clips, shifted times) keep
    their precision; the result has the positions' dtype.
    """
    omega = rope_frequencies(d_head, base, positions.device)
    angles = positions.to(torch.float64).unsqueeze(-1) * omega
    return angles.cos().to(positions.dtype), angles.sin().to(positions.dtype)


def index_positions(mask: torch.Tensor) -> torch.Tensor:
    """Index-RoPE positions of a (B, T) modality sequence: 0, 1, ..., T-1 for every row."""
    t = torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32)
    return t.unsqueeze(0).expand(mask.shape[0], -1)


def time_positions(times: torch.Tensor, tau_s: float) -> torch.Tensor:
    """TaRoPE positions: timestamps (seconds) in units of tau."""
    return times.float() / tau_s


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate feature pairs (2k, 2k+1) of x (B, H, T, d_head) by angles given as (B, T, d/2)."""
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


def sequence_rotation(
    position: str,
    segments: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    d_head: int,
    base: float,
    tau_s: float,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(cos, sin) for a sequence made by concatenating modality segments (mask, times).

    position: 'none' -> None; 'index_rope' -> each segment's own token index; 'tarope' -> t/tau.
    """
    if position == "none":
        return None
    if position == "index_rope":
        pos = [index_positions(mask) for mask, _ in segments]
    elif position == "tarope":
        pos = [time_positions(times, tau_s) for _, times in segments]
    else:
        raise ConfigError(
            f"unknown position encoding {position!r}", fix="use none, index_rope or tarope"
        )
    return rope_angles(torch.cat(pos, dim=1), d_head, base)

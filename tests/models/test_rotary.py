"""RoPE / TaRoPE: relative-time property, cross-rate alignment, and index RoPE's lack of it."""

from __future__ import annotations

import pytest
import torch

from aver.errors import ConfigError
from aver.models.layers import MultiHeadAttention
from aver.models.msan import MSANCore
from aver.models.rotary import (
    apply_rotary,
    index_positions,
    rope_angles,
    rope_frequencies,
    time_positions,
)

from .conftest import small_cfg

D_HEAD, BASE, TAU = 8, 10000.0, 0.04


def rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (B, T, D_HEAD) rotated at positions (B, T)."""
    cos, sin = rope_angles(positions, D_HEAD, BASE)
    return apply_rotary(x.unsqueeze(1), cos, sin).squeeze(1)


def test_frequencies_follow_rope_formula():
    omega = rope_frequencies(D_HEAD, BASE)
    expected = torch.tensor([BASE ** (-2 * k / D_HEAD) for k in range(D_HEAD // 2)])
    torch.testing.assert_close(omega.float(), expected)
    with pytest.raises(ConfigError):
        rope_frequencies(7, BASE)


def test_rotation_preserves_norms_and_is_a_pairwise_rotation():
    x = torch.randn(2, 5, D_HEAD)
    pos = torch.rand(2, 5) * 30
    y = rotate(x, pos)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    # pair k is rotated by angle omega_k * p
    omega = rope_frequencies(D_HEAD, BASE).float()
    ang = pos[0, 0] * omega[1]
    c, s = torch.cos(ang), torch.sin(ang)
    x2, x3 = x[0, 0, 2], x[0, 0, 3]
    torch.testing.assert_close(y[0, 0, 2:4], torch.stack([x2 * c - x3 * s, x2 * s + x3 * c]))


def _scores(attn, x, y, tq, tk):
    q_rot = rope_angles(time_positions(tq, TAU), attn.d_head, BASE)
    k_rot = rope_angles(time_positions(tk, TAU), attn.d_head, BASE)
    return attn.scores(x, y, q_rot, k_rot)


def test_tarope_scores_unchanged_when_all_times_shift():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2)
    x, y = torch.randn(2, 7, 16), torch.randn(2, 5, 16)
    tq, tk = torch.rand(2, 7) * 2, torch.rand(2, 5) * 2
    base = _scores(attn, x, y, tq, tk)
    for shift in (0.37, 3.7, -1.25):
        torch.testing.assert_close(
            _scores(attn, x, y, tq + shift, tk + shift), base, atol=2e-4, rtol=0
        )
    # shifting only the keys changes the scores: they do depend on the time difference
    assert (_scores(attn, x, y, tq, tk + 0.37) - base).abs().max() > 0.05


@pytest.mark.parametrize(("rate_a", "rate_v"), [(100.0, 25.0), (50.0, 5.0), (100.0, 30.0)])
def test_same_instant_same_rotation_across_frame_rates(rate_a, rate_v):
    """One vector at t = 0.4 s: TaRoPE rotates audio and video alike; index RoPE does not."""
    torch.manual_seed(1)
    ta, tv = int(2 * rate_a), int(2 * rate_v)
    times_a = (torch.arange(ta) / rate_a)[None]
    times_v = (torch.arange(tv) / rate_v)[None]
    iv = round(0.4 * rate_v)
    ia = round(float(times_v[0, iv]) * rate_a)
    assert abs(float(times_a[0, ia] - times_v[0, iv])) < 1e-6  # the same instant
    u = torch.randn(D_HEAD)
    xa, xv = u.expand(1, ta, D_HEAD), u.expand(1, tv, D_HEAD)

    ra = rotate(xa, time_positions(times_a, TAU))[0, ia]
    rv = rotate(xv, time_positions(times_v, TAU))[0, iv]
    torch.testing.assert_close(ra, rv, atol=1e-5, rtol=0)
    # the cross-modal score of equal content at the same instant equals the zero-offset score
    torch.testing.assert_close(ra @ rv, u @ u, atol=1e-4, rtol=0)

    ia_rot = rotate(xa, index_positions(times_a))[0, ia]
    iv_rot = rotate(xv, index_positions(times_v))[0, iv]
    assert (ia_rot - iv_rot).abs().max() > 0.1  # index RoPE: rotation depends on the frame rate
    assert abs(float(ia_rot @ iv_rot - u @ u)) > 0.1


def _core(position: str) -> MSANCore:
    torch.manual_seed(0)
    return MSANCore(6, 5, 3, small_cfg(name="msan", position=position, dropout=0.0)).eval()


def _tokens(shift_a: float, shift_v: float):
    g = torch.Generator().manual_seed(3)
    a, v = torch.randn(2, 20, 6, generator=g), torch.randn(2, 4, 5, generator=g)
    am, vm = torch.ones(2, 20, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    at = (torch.arange(20) * 0.04 + 0.02).expand(2, -1) + shift_a
    vt = (torch.arange(4) * 0.2 + 0.1).expand(2, -1) + shift_v
    return a, am, at, v, vm, vt


def test_msan_with_tarope_is_invariant_to_a_clip_time_offset():
    core = _core("tarope")
    with torch.no_grad():
        ref = core(*_tokens(0.0, 0.0)).logits
        torch.testing.assert_close(core(*_tokens(1.5, 1.5)).logits, ref, atol=1e-4, rtol=0)
        # moving video against audio changes the prediction: cross-modal timing is seen
        assert (core(*_tokens(0.0, 0.3)).logits - ref).abs().max() > 1e-3


def test_msan_without_positions_ignores_times():
    core = _core("none")
    with torch.no_grad():
        ref = core(*_tokens(0.0, 0.0)).logits
        torch.testing.assert_close(core(*_tokens(0.0, 0.3)).logits, ref)

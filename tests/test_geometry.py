"""Token-time geometry: TaRoPE rotations over a window, CTM positives per audio token."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aver import geometry as g


def test_lowest_rotation_at_the_defaults_and_the_old_base():
    # d_head 16 (d_model 64 / 4 heads), tau 40 ms, 2 s window: 50 * base^(-14/16)
    assert g.lowest_rope_rotation(2.0, tau_s=0.04, base=100.0, d_head=16) == pytest.approx(
        50 * 10**-1.75
    )
    assert g.lowest_rope_rotation(2.0, tau_s=0.04, base=100.0, d_head=16) == pytest.approx(
        0.889, abs=1e-3
    )
    assert g.lowest_rope_rotation(2.0, tau_s=0.04, base=1e4, d_head=16) == pytest.approx(
        0.0158, abs=1e-4
    )


def test_fastest_pair_turns_one_radian_per_tau():
    assert g.rope_rotation(0.04, tau_s=0.04, base=100.0, d_head=16, pair=0) == pytest.approx(1.0)
    assert g.rope_rotation(2.0, tau_s=0.04, base=1e4, d_head=8, pair=1) == pytest.approx(5.0)


@pytest.mark.parametrize("radians", [0.5, 1.0, 2.0])
def test_rope_base_for_inverts_the_lowest_rotation(radians):
    base = g.rope_base_for(2.0, tau_s=0.04, d_head=16, radians=radians)
    assert g.lowest_rope_rotation(2.0, tau_s=0.04, base=base, d_head=16) == pytest.approx(radians)
    assert g.rope_base_for(2.0, tau_s=0.04, d_head=16) == pytest.approx(50 ** (16 / 14))


def test_rotation_rejects_bad_shapes():
    with pytest.raises(ValueError, match="even d_head"):
        g.rope_rotation(1.0, tau_s=0.04, base=100.0, d_head=7, pair=0)
    with pytest.raises(ValueError, match="even d_head"):
        g.rope_base_for(1.0, tau_s=0.04, d_head=2)


def test_positive_fraction_on_a_hand_case():
    v = np.array([0.1, 0.3])
    a = np.array([0.0, 0.05, 0.1, 0.2, 0.25])
    assert g.positive_fraction(a, v, 0.04) == pytest.approx(1 / 5)  # only 0.1
    assert g.positive_fraction(a, v, 0.05) == pytest.approx(3 / 5)  # 0.05, 0.1, 0.25
    assert g.positive_fraction(a, v, 0.1) == 1.0  # 0.0 and 0.2 exactly at 0.1
    # masked video token 0.1: its neighbours lose their positive
    assert g.positive_fraction(a, v, 0.05, v_mask=np.array([False, True])) == pytest.approx(1 / 5)
    # masked audio tokens do not count
    am = np.array([False, False, True, True, True])
    assert g.positive_fraction(a, v, 0.04, a_mask=am) == pytest.approx(1 / 3)


def test_positive_fraction_keeps_clips_apart():
    a = np.array([[0.1, 0.5], [0.1, 0.5]])
    v = np.array([[0.1, 0.1], [0.5, 0.5]])
    assert g.positive_fraction(a, v, 0.01) == pytest.approx(0.5)
    assert math.isnan(g.positive_fraction(a, v, 0.01, a_mask=np.zeros((2, 2), bool)))


def test_default_cache_rates_give_every_audio_token_a_positive():
    # the default demo cache: audio tokens every 4 x 10 ms from 31 ms, video at 5 fps centres
    a = 0.031 + 0.04 * np.arange(49)
    v = (np.arange(10) + 0.5) / 5.0
    assert g.min_ctm_delta(5.0) == pytest.approx(0.1)
    assert g.positive_fraction(a, v, g.min_ctm_delta(5.0)) == 1.0
    assert g.positive_fraction(a, v, 0.09) < 1.0
    assert g.positive_fraction(a, v, 0.04) == pytest.approx(20 / 49)  # the old default: 41%
    assert g.expected_positive_fraction(0.04, 5.0) == pytest.approx(0.4)
    assert g.expected_positive_fraction(0.1, 5.0) == 1.0
    assert g.expected_positive_fraction(0.3, 5.0) == 1.0


def test_audio_token_frames_match_the_audio_encoder():
    torch = pytest.importorskip("torch")
    from aver.models.encoders import AudioConvEncoder

    enc = AudioConvEncoder(8, 8)
    times = (torch.arange(40, dtype=torch.float32) * 0.01).unsqueeze(0)
    _, _, out_t = enc(torch.zeros(1, 40, 8), torch.ones(1, 40, dtype=torch.bool), times)
    step = float(out_t[0, 1] - out_t[0, 0])
    assert step == pytest.approx(g.AUDIO_TOKEN_FRAMES * 0.01)

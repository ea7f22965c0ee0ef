"""CTM loss: a hand-computed example, masking, multi-positives, and its direction."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from aver.models import build_model
from aver.models.losses import ctm_loss

from .conftest import AUDIO_DIM, FACE, N_CLASSES, make_batch, small_cfg

T, DELTA = 0.5, 0.04


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def _example(extra_pad: bool = False):
    # clip 0: audio at 0.0 s (0 deg), 0.5 s (90 deg); video at 0.01 s (30 deg), 0.6 s (120 deg)
    # clip 1: audio at 0.0 s (180 deg); video at 0.0 s (200 deg)
    pad = [unit(45)] if extra_pad else []
    za = torch.tensor([[unit(0), unit(90), *([unit(0)] if extra_pad else [])],
                       [unit(180), [0.0, 0.0], *pad]])  # fmt: skip
    zv = torch.tensor([[unit(30), unit(120)], [unit(200), [0.0, 0.0]]])
    a_mask = torch.tensor([[True, True] + [False] * extra_pad, [True, False] + [False] * extra_pad])
    a_times = torch.tensor([[0.0, 0.5] + [0.0] * extra_pad, [0.0, 0.0] + [0.0] * extra_pad])
    v_mask = torch.tensor([[True, True], [True, False]])
    v_times = torch.tensor([[0.01, 0.6], [0.0, 0.0]])
    return za, a_mask, a_times, zv, v_mask, v_times


def by_hand() -> float:
    def s(deg):  # cosine similarity / temperature
        return math.cos(math.radians(deg)) / T

    def nce(pos, others):
        return -math.log(math.exp(pos) / (math.exp(pos) + sum(math.exp(o) for o in others)))

    # audio anchors with a positive: a00 (-> v00), a10 (-> v10); a01 has none within 40 ms
    a00 = nce(s(30), [s(120), s(200)])
    a10 = nce(s(20), [s(150), s(60)])
    # video anchors with a positive: v00 (-> a00), v10 (-> a10); v01 has none
    v00 = nce(s(30), [s(60), s(150)])
    v10 = nce(s(20), [s(200), s(110)])
    return ((a00 + a10) / 2 + (v00 + v10) / 2) / 2


def test_ctm_matches_hand_computation():
    loss = ctm_loss(*_example(), delta_s=DELTA, temperature=T)
    assert math.isclose(float(loss), by_hand(), rel_tol=1e-5)


def test_ctm_ignores_padded_tokens():
    a = ctm_loss(*_example(), delta_s=DELTA, temperature=T)
    b = ctm_loss(*_example(extra_pad=True), delta_s=DELTA, temperature=T)
    torch.testing.assert_close(a, b)


def test_ctm_sums_over_several_positives():
    za = torch.tensor([[unit(0)]])
    zv = torch.tensor([[unit(10), unit(40), unit(170)]])
    loss = ctm_loss(za, torch.ones(1, 1, dtype=torch.bool), torch.tensor([[0.5]]), zv,
                    torch.ones(1, 3, dtype=torch.bool), torch.tensor([[0.47, 0.53, 0.9]]),
                    delta_s=DELTA, temperature=T)  # fmt: skip
    e = [math.exp(math.cos(math.radians(d)) / T) for d in (10, 40, 170)]
    a2v = -math.log((e[0] + e[1]) / sum(e))
    v2a = 0.0  # each of the two video anchors has its single audio token as positive: p = 1
    assert math.isclose(float(loss), (a2v + v2a) / 2, rel_tol=1e-5)


def test_ctm_falls_as_positives_become_more_similar():
    g = torch.Generator().manual_seed(0)
    za = F.normalize(torch.randn(2, 6, 16, generator=g), dim=-1)
    zv0 = F.normalize(torch.randn(2, 6, 16, generator=g), dim=-1)
    times = (torch.arange(6) * 0.2).expand(2, -1)  # audio token i and video token i coincide
    mask = torch.ones(2, 6, dtype=torch.bool)
    losses = []
    for alpha in (0.0, 0.25, 0.5, 0.75, 1.0):
        zv = F.normalize((1 - alpha) * zv0 + alpha * za, dim=-1)
        losses.append(float(ctm_loss(za, mask, times, zv, mask, times, delta_s=DELTA,
                                     temperature=0.1)))  # fmt: skip
    assert all(b < a for a, b in itertools.pairwise(losses)), losses


def test_ctm_without_positives_is_zero_and_differentiable():
    za = torch.randn(1, 3, 4, requires_grad=True)
    zv = torch.randn(1, 2, 4, requires_grad=True)
    loss = ctm_loss(F.normalize(za, dim=-1), torch.ones(1, 3, dtype=torch.bool),
                    torch.tensor([[0.0, 0.1, 0.2]]), F.normalize(zv, dim=-1),
                    torch.ones(1, 2, dtype=torch.bool), torch.tensor([[1.0, 1.5]]),
                    delta_s=DELTA, temperature=T)  # fmt: skip
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert za.grad is not None


def test_msan_reports_weighted_ctm():
    torch.manual_seed(0)
    cfg = small_cfg(name="msan", ctm_weight=0.25, ctm_delta_s=0.05, dropout=0.0)
    model = build_model(cfg, n_classes=N_CLASSES, audio_dim=AUDIO_DIM, face_size=FACE).eval()
    batch = make_batch([40, 33], [4, 3], seed=1)
    with torch.no_grad():
        out = model(batch)
        a, am, at = model.audio(batch["audio"], batch["audio_mask"], batch["audio_times"])
        v, vm, vt = model.video(batch["video"], batch["video_mask"], batch["video_times"])
        ha, hv = model.core.encode(a, am, at, v, vm, vt)
        raw = ctm_loss(model.core.ctm(ha), am, at, model.core.ctm(hv), vm, vt, delta_s=0.05,
                       temperature=cfg.ctm_temperature)  # fmt: skip
    assert float(raw) > 0
    torch.testing.assert_close(out.aux_losses["ctm"], 0.25 * raw)

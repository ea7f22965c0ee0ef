"""Schedules, optimizers, presets and tuned-parameter precedence."""

from __future__ import annotations

import math

import pytest
import torch

from aver.config import TrainConfig, parse_params
from aver.errors import ConfigError
from aver.resolution import resolve
from aver.training.optim import Schedule, build_optimizer
from aver.training.presets import PRESETS


def _sched(steps: int = 4, **kw) -> Schedule:
    cfg = TrainConfig(**{"lr": 0.1, "epochs": 10, **kw})
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg)
    return Schedule(opt, cfg, steps)


def test_linear_warmup_then_cosine():
    s = _sched(warmup_epochs=2, schedule="cosine")
    # 2 warm-up epochs of 4 steps: lr * (k+1)/9 for k = 0..7
    assert [s.lr_at(e, i) for e in (0, 1) for i in range(4)] == pytest.approx(
        [0.1 * (k + 1) / 9 for k in range(8)]
    )
    assert s.lr_at(2, 0) == pytest.approx(0.1)  # cosine starts at the base lr
    assert s.lr_at(6, 0) == pytest.approx(0.05)  # half-way through the 8 cosine epochs
    assert s.lr_at(9, 3) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 7.75 / 8)))
    assert s.step(6, 0) == pytest.approx(0.05)
    assert s.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_step_and_plateau_schedules():
    s = _sched(warmup_epochs=0, schedule="step", step_size=3, gamma=0.5)
    assert [s.lr_at(e) for e in range(7)] == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025])
    p = _sched(warmup_epochs=0, schedule="plateau", plateau_patience=2, gamma=0.1)
    for epoch, uar in enumerate([0.5, 0.6, 0.6, 0.55]):  # two epochs without gain -> x0.1
        p.end_epoch(epoch, uar)
    assert p.lr_at(4) == pytest.approx(0.01)
    q = _sched(warmup_epochs=0, schedule="plateau")
    q.load_state_dict(p.state_dict())
    assert q.lr_at(0) == pytest.approx(0.01)


def test_optimizers():
    m = torch.nn.Linear(2, 2)
    assert isinstance(build_optimizer(m, TrainConfig(optimizer="adam")), torch.optim.Adam)
    assert isinstance(build_optimizer(m, TrainConfig(optimizer="adamw")), torch.optim.AdamW)
    sgd = build_optimizer(m, TrainConfig(optimizer="sgd", momentum=0.8))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8


def test_preset_sets_its_keys_and_leaves_the_rest():
    params = parse_params(
        {
            "train": {
                "preset": "avtca_paper",
                "epochs": 5,
                "model": {"variant": "ct4", "unimodal_weight": 1.0},
            }
        }
    )
    res = resolve(params)
    resolved, applied = res.params, res.applied
    t = resolved.train
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size) == ("adam", 0.01, 0.001, 8)
    assert t.epochs == 128  # the preset wins over params.yaml for the keys it lists
    assert t.model.name == "avtca" and t.model.variant == "full"
    assert t.model.unimodal_weight == 0.0  # the paper trains on the fused logits only
    assert t.seed == parse_params({}).train.seed  # keys it does not list are untouched
    assert applied["preset.lr"] == 0.01 and applied["preset.epochs"] == 128
    # no preset: nothing changes
    plain = resolve(parse_params({"train": {"lr": 0.5}}))
    assert plain.params.train.lr == 0.5 and plain.applied == {}
    assert set(PRESETS) == {"avtca_paper", "demo_fast", "pretrained_msan"}


def test_pretrained_msan_builds_on_an_embedding_cache():
    """The recipe's head: its keys apply, and it builds on WavLM-base layers + FaceNet vectors."""
    from aver.models import build_model

    t = resolve(parse_params({"train": {"preset": "pretrained_msan"}})).params.train
    assert t.model.name == "msan" and t.lr == 5e-4 and t.early_stop_patience == 10
    model = build_model(
        t.model, n_classes=8, audio_dim=768, face_size=0, audio_layers=12, video_dim=512
    )
    assert sum(p.numel() for p in model.parameters()) > 0


def test_avtca_paper_is_the_recipe_as_published():
    resolved = resolve(parse_params({"train": {"preset": "avtca_paper"}})).params
    t = resolved.train
    assert t.model.video_stride == 1  # the paper's face stem convolution
    assert t.augment is False and t.select == "last" and t.early_stop_patience is None
    assert t.model.unimodal_weight == 0.0 and t.grad_clip is None and t.schedule == "none"
    # stride 1 still fits the default cache faces
    assert resolved.cache.face_size >= 2 * t.model.video_stride * t.model.video_patches


def test_train_select_is_validated():
    assert TrainConfig().select == "best" and TrainConfig().early_stop_patience == 20
    assert parse_params({"train": {"select": "last"}}).train.select == "last"
    # last keeps the final weights: early stopping is off unless it is given
    assert TrainConfig(select="last").early_stop_patience is None
    assert TrainConfig(select="last", early_stop_patience=5).early_stop_patience == 5
    with pytest.raises(ConfigError, match=r"train\.select.*'final'.*'best'.*'last'"):
        parse_params({"train": {"select": "final"}})


def _fit_peaking_early(select: str, ckpt=None):
    """4 epochs on tiny data whose val labels are rotated: val UAR is best after epoch 1 and
    falls as the model learns the train labels. Returns the result and each epoch's weights."""
    from torch.utils.data import DataLoader

    from aver.training.loop import fit, seed_everything
    from tests.training.tiny import N_CLASSES, TinyAV, TinySet, loaders

    cfg = TrainConfig(epochs=4, lr=0.01, device="cpu", select=select, early_stop_patience=None)
    seed_everything(0)
    model, (train, _) = TinyAV(), loaders(seed=0)
    val_set = TinySet(12, seed=2)
    val_set.label = (val_set.label + 1) % N_CLASSES
    states = {}

    def snap(epoch, metrics):
        states[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    res = fit(
        model,
        train,
        DataLoader(val_set, batch_size=6),
        cfg,
        n_classes=N_CLASSES,
        checkpoint_dir=ckpt,
        on_epoch=snap,
        progress=False,
    )
    return res, states


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_select_last_keeps_the_last_epochs_weights(tmp_path):
    best, states = _fit_peaking_early("best")
    uars = [h["val_uar"] for h in best.history]
    assert uars[0] > max(uars[1:])  # the premise: val UAR peaks at epoch 1 of 4
    assert best.best_epoch == best.best_uar_epoch == 1 and best.select == "best"
    assert _same(best.best_state, states[1]) and not _same(best.best_state, states[4])

    last, states_l = _fit_peaking_early("last", tmp_path / "ckpt")
    assert [h["val_uar"] for h in last.history] == uars  # the same training
    assert last.best_epoch == 4 and last.best_uar_epoch == 1 and last.select == "last"
    assert last.best["val_uar"] == uars[3] and not last.stopped_early
    assert _same(last.best_state, states_l[4]) and _same(states_l[4], states[4])

    # a finished run resumed from its checkpoint keeps the same epoch's weights, and the
    # checkpoint (written under select last) still holds the best epoch's for select best
    again, _ = _fit_peaking_early("last", tmp_path / "ckpt")
    assert again.start_epoch == 4 and again.best_epoch == 4
    assert _same(again.best_state, states[4])
    other, _ = _fit_peaking_early("best", tmp_path / "ckpt")
    assert other.start_epoch == 4 and other.best_epoch == 1
    assert _same(other.best_state, states[1])

"""TrainState: epoch bookkeeping, best weights, and a save/load round trip through last.pt."""

from __future__ import annotations

import logging
import math

import torch

from aver.config import TrainConfig
from aver.training import checkpoints
from aver.training.optim import Schedule, build_optimizer
from aver.training.state import TrainState
from tests.training.tiny import TinyAV


def _state(fingerprint: str = "fp", seed: int = 0) -> TrainState:
    torch.manual_seed(seed)
    cfg = TrainConfig(epochs=5, lr=0.01, device="cpu")
    model = TinyAV()
    optimizer = build_optimizer(model, cfg)
    return TrainState(
        model=model,
        optimizer=optimizer,
        schedule=Schedule(optimizer, cfg, 4),
        scaler=None,
        fingerprint=fingerprint,
        total_epochs=cfg.epochs,
        extra={"note": "x"},
    )


def _metrics(uar: float) -> dict[str, float]:
    return {"train_loss": 1.0, "val_uar": uar}


def test_end_epoch_keeps_the_best_uar_and_counts_bad_epochs():
    state = _state()
    for uar in (0.4, 0.6, 0.5, 0.6):
        state.end_epoch(_metrics(uar))
    assert state.epoch == 4 and [h["epoch"] for h in state.history] == [1.0, 2.0, 3.0, 4.0]
    assert (state.best_epoch, state.best_metric, state.bad_epochs) == (2, 0.6, 2)
    assert state.best_state is not None
    res = state.result("best")
    assert (res.best_epoch, res.best_uar_epoch, res.best["val_uar"]) == (2, 2, 0.6)
    last = state.result("last")
    assert (last.best_epoch, last.best_uar_epoch, last.best["val_uar"]) == (4, 2, 0.6)


def test_no_finite_uar_keeps_the_final_weights():
    state = _state()
    state.end_epoch(_metrics(math.nan))
    res = state.result("best")
    assert res.best_epoch == 0 and res.best == {}
    assert all(torch.equal(v, state.model.state_dict()[k]) for k, v in res.best_state.items())


def test_save_load_round_trip(tmp_path):
    state = _state()
    state.end_epoch(_metrics(0.5))
    state.end_epoch(_metrics(0.3))
    state.stopped = True
    state.save(tmp_path / "last.pt")
    assert checkpoints.load(tmp_path / "last.pt")["format"] == checkpoints.CHECKPOINT_FORMAT

    fresh = _state(seed=1)  # other initial weights
    assert fresh.load(tmp_path / "last.pt")
    assert (fresh.epoch, fresh.start_epoch, fresh.best_epoch, fresh.bad_epochs) == (2, 2, 1, 1)
    assert fresh.stopped and fresh.history == state.history and fresh.extra == {"note": "x"}
    for k, v in state.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[k], v)
    assert (
        fresh.optimizer.state_dict()["param_groups"] == state.optimizer.state_dict()["param_groups"]
    )


def test_load_ignores_missing_files_and_other_configurations(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert not _state().load(tmp_path / "none.pt")
    _state().save(tmp_path / "last.pt")
    other = _state("other")
    assert not other.load(tmp_path / "last.pt") and other.epoch == 0
    assert "different configuration" in caplog.text

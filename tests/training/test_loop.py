"""The training loop: learning, early stopping, callbacks, exact resume, CPU-only options."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aver.config import TrainConfig
from aver.training import checkpoints
from aver.training.loop import TrainingError, fit, predict, seed_everything
from tests.training.tiny import N_CLASSES, TinyAV, loaders

REPO = Path(__file__).resolve().parents[2]


def _cfg(**kw) -> TrainConfig:
    base = {"epochs": 4, "lr": 0.01, "device": "cpu", "early_stop_patience": None}
    return TrainConfig(**{**base, **kw})


def _run(cfg: TrainConfig, ckpt=None, on_epoch=None):
    seed_everything(cfg.seed)
    model = TinyAV()
    train, val = loaders(seed=cfg.seed)
    res = fit(
        model,
        train,
        val,
        cfg,
        n_classes=N_CLASSES,
        checkpoint_dir=ckpt,
        on_epoch=on_epoch,
        progress=False,
    )
    return model, res


def test_fit_learns_and_reports_every_epoch():
    seen = []
    model, res = _run(_cfg(epochs=6), on_epoch=lambda e, m: seen.append((e, m)))
    assert [e for e, _ in seen] == [1, 2, 3, 4, 5, 6]
    keys = {
        "train_loss",
        "train_accuracy",
        "train_uar",
        "val_loss",
        "val_accuracy",
        "val_uar",
        "val_macro_f1",
        "lr",
        "epoch_time_s",
    }
    assert keys <= set(seen[0][1])
    assert len(res.history) == 6 and res.epochs_done == 6 and res.start_epoch == 0
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    # the data are separable: well above chance (1/3) on validation
    assert res.best["val_uar"] > 0.8
    assert res.best["val_uar"] == max(h["val_uar"] for h in res.history)
    # best_state holds the best epoch's weights, not necessarily the last
    model.load_state_dict(res.best_state)
    _, val = loaders()
    p = predict(model, val)
    assert (p.y_pred == p.y_true).mean() == pytest.approx(res.best["val_accuracy"])
    assert p.probs.shape == (12, N_CLASSES) and len(p.clip_ids) == 12


def test_same_seed_same_history_other_seed_differs():
    _, a = _run(_cfg(epochs=2))
    _, b = _run(_cfg(epochs=2))
    _, c = _run(_cfg(epochs=2, seed=1))
    strip = [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in b.history]
    assert a.history[0]["train_loss"] != c.history[0]["train_loss"]


def test_early_stopping_on_val_uar():
    # lr so small nothing changes: val UAR never improves after epoch 1 -> stop after 1+2 epochs
    _, res = _run(_cfg(epochs=10, lr=1e-12, warmup_epochs=0, early_stop_patience=2))
    assert res.stopped_early and res.epochs_done == 3 and res.best_epoch == 1


def test_callback_can_stop_training():
    _, res = _run(_cfg(epochs=5), on_epoch=lambda e, m: e == 2)
    assert res.epochs_done == 2 and len(res.history) == 2


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    full_model, full = _run(_cfg(epochs=4), ckpt=tmp_path / "a")

    class Killed(Exception):
        pass

    def die(epoch, metrics):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        _run(_cfg(epochs=4), ckpt=tmp_path / "b", on_epoch=die)
    state = checkpoints.load(tmp_path / "b" / "last.pt")
    assert state["epoch"] == 2
    resumed_model, resumed = _run(_cfg(epochs=4), ckpt=tmp_path / "b")
    assert resumed.start_epoch == 2 and resumed.epochs_done == 4
    drop = "epoch_time_s"
    assert [{k: v for k, v in h.items() if k != drop} for h in resumed.history] == [
        {k: v for k, v in h.items() if k != drop} for h in full.history
    ]
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    # a finished run resumes to "nothing to do"
    _, again = _run(_cfg(epochs=4), ckpt=tmp_path / "b")
    assert again.start_epoch == 4 and len(again.history) == 4


def test_resume_removes_a_killed_runs_half_written_checkpoint(tmp_path):
    """A SIGKILL during checkpoints.save leaves `.last.pt.<random>.tmp`; the rerun removes it."""
    _run(_cfg(epochs=2), ckpt=tmp_path)
    half = tmp_path / ".last.pt.k1lled.tmp"
    half.write_bytes(b"half a checkpoint")
    _, res = _run(_cfg(epochs=3), ckpt=tmp_path)
    assert not half.exists()
    assert res.epochs_done == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_checkpoint_of_other_config_is_not_resumed(tmp_path, caplog):
    _run(_cfg(epochs=2), ckpt=tmp_path)
    with caplog.at_level(logging.INFO):
        _, res = _run(_cfg(epochs=2, lr=0.02), ckpt=tmp_path)
    assert res.start_epoch == 0
    assert "different configuration" in caplog.text


def test_amp_and_compile_ignored_on_cpu(caplog):
    with caplog.at_level(logging.INFO):
        _, res = _run(_cfg(epochs=1, amp=True, compile=True))
    assert res.epochs_done == 1
    assert "train.amp ignored" in caplog.text and "train.compile ignored" in caplog.text


def test_diverging_loss_is_a_clear_error():
    seed_everything(0)
    model = TinyAV()
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    train, val = loaders()
    with pytest.raises(TrainingError, match=r"train\.lr"):
        fit(model, train, val, _cfg(epochs=1), n_classes=N_CLASSES, progress=False)


def test_resume_after_sigkill(tmp_path):
    """A fit process is SIGKILLed after a checkpoint exists; the rerun continues from it."""
    ckpt, out = tmp_path / "ckpt", tmp_path / "result.json"
    cmd = [sys.executable, "-m", "tests.training.fit_worker", str(ckpt), "5"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    proc = subprocess.Popen(
        [*cmd, "2", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while not line.startswith("epoch 2") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "worker exited before epoch 2"
        assert line.startswith("epoch 2")
        proc.send_signal(signal.SIGKILL)  # while it sleeps inside on_epoch of epoch 2
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    killed_at = checkpoints.load(ckpt / "last.pt")["epoch"]
    assert killed_at == 2
    done = subprocess.run(
        [*cmd, "0", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["start_epoch"] == killed_at
    assert result["epochs_done"] == 5
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3, 4, 5]
    assert done.stdout.split() == ["epoch", "3", "epoch", "4", "epoch", "5"]

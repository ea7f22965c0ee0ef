"""Train-stage logs: plain epoch lines without carriage returns when piped, a bar on a TTY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pty_run import run_in_pty

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 3


def _cmd(cache: Path, out: Path) -> list[str]:
    worker = "tests.training.train_stage_worker"
    return [sys.executable, "-m", worker, str(cache), str(out), str(EPOCHS)]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "AVER_PROGRESS")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return {
        **env,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **extra,
    }


def test_piped_train_stage_prints_one_plain_line_per_epoch(embedded_store, tiny_cache, tmp_path):
    done = subprocess.run(
        _cmd(tiny_cache, tmp_path / "run"),
        cwd=embedded_store,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "\r" not in log
    epochs = [ln for ln in log.splitlines() if ln.startswith("train fold 0 epoch ")]
    assert [ln.split(":")[0] for ln in epochs] == [
        f"train fold 0 epoch {e}/{EPOCHS}" for e in range(1, EPOCHS + 1)
    ]
    for line in epochs:
        assert " loss " in line and " val_uar " in line and " clips/s " in line


FIT = """
from aver.config import TrainConfig
from aver.training.loop import fit, seed_everything
from tests.training.tiny import N_CLASSES, TinyAV, loaders

seed_everything(0)
train, val = loaders()
cfg = TrainConfig(epochs=EPOCHS, lr=0.01, device="cpu", early_stop_patience=None)
fit(TinyAV(), train, val, cfg, n_classes=N_CLASSES, desc="train fold 0")
""".replace("EPOCHS", str(EPOCHS))


@pytest.mark.parametrize("ci", ["", "1"])
def test_fit_on_a_terminal_draws_a_bar_unless_ci(ci):
    env = _env(CI=ci) if ci else _env()
    text = run_in_pty([sys.executable, "-c", FIT], env=env, timeout=120, cwd=REPO)
    text = text.replace("\r\n", "\n")
    if ci:
        assert "\r" not in text
        assert f"train fold 0 epoch {EPOCHS}/{EPOCHS}: loss" in text
    else:
        assert "\r" in text  # tqdm redraws in place
        assert f"{EPOCHS}/{EPOCHS}" in text and "clips/s=" in text

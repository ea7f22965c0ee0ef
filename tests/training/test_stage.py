"""The train stage on a real cache: Ray Tune's entry point, and resume of a killed stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from aver.errors import ConfigError
from aver.training import checkpoints
from aver.training.loop import fit_for_tuning
from aver.training.pipeline import resolve_folds
from tests.tracking.conftest import tiny_params

REPO = Path(__file__).resolve().parents[2]


def test_fit_for_tuning_reports_each_epoch(tiny_cache, tmp_path):
    reported = []
    params = tiny_params(tiny_cache, tmp_path, epochs=3)
    res = fit_for_tuning(
        params, tiny_cache, fold=2, on_epoch=lambda e, m: reported.append((e, m["val_uar"]))
    )
    assert [e for e, _ in reported] == [1, 2, 3]
    assert [u for _, u in reported] == [h["val_uar"] for h in res.history]
    assert 0.0 <= res.best["val_uar"] <= 1.0


def test_resolve_folds():
    assert resolve_folds("all", 3) == [0, 1, 2]
    assert resolve_folds([2, 0, 2], 3) == [0, 2]
    with pytest.raises(ConfigError, match=r"not in 0\.\.2"):
        resolve_folds([3], 3)


@pytest.mark.slow  # ~20 s: two processes importing torch + mlflow
def test_killed_train_stage_resumes_checkpoint_and_mlflow_runs(
    embedded_store, tiny_cache, tmp_path
):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "tests.training.train_stage_worker",
        str(tiny_cache),
        str(out),
        "12",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    last = out / "models" / "checkpoints" / "fold-0" / "last.pt"
    proc = subprocess.Popen(
        cmd, cwd=embedded_store, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists() and checkpoints.load(last)["epoch"] >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the stage finished (or failed) before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = checkpoints.load(last)["epoch"]
    assert 2 <= killed_at < 12
    session = json.loads((out / "models" / "checkpoints" / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{embedded_store / 'mlruns.db'}")
    assert client.get_run(session["parent"]).info.status == "RUNNING"  # killed: never ended
    done = subprocess.run(
        cmd, cwd=embedded_store, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "models" / "train_summary.json").read_text())
    assert summary["folds"]["0"]["resumed_from_epoch"] == killed_at
    assert summary["folds"]["0"]["epochs_done"] == 12
    # the same MLflow runs were reopened and finished; every epoch logged exactly once
    assert summary["mlflow"]["parent_run_id"] == session["parent"]
    child = summary["mlflow"]["fold_run_ids"]["0"]
    assert child == session["folds"]["0"]
    assert client.get_run(session["parent"]).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(child, "val_uar")]
    assert sorted(steps) == list(range(1, 13))

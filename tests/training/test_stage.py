"""The train stage on a real cache: Ray Tune's entry point, and resume of a killed stage."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from aver.errors import ConfigError
from aver.training import checkpoints
from aver.training.folds import fit_fold, modality_dropout, resolve_folds
from tests.tracking.conftest import tiny_params

REPO = Path(__file__).resolve().parents[2]


def test_fit_fold_reports_each_epoch(tiny_cache, tmp_path):
    reported = []
    params = tiny_params(tiny_cache, tmp_path, epochs=3)
    _, res = fit_fold(
        params, tiny_cache, 2, on_epoch=lambda e, m: reported.append((e, m["val_uar"]))
    )
    assert [e for e, _ in reported] == [1, 2, 3]
    assert [u for _, u in reported] == [h["val_uar"] for h in res.history]
    assert 0.0 <= res.best["val_uar"] <= 1.0


@pytest.mark.parametrize("name", ["msan", "late_fusion"])
def test_fusion_model_trains_with_modality_dropout(tiny_cache, tmp_path, name):
    """p = 0.5: the train loader drops a modality of some clips; fit stays finite and
    reproducible from the seed."""
    model = {"name": name, "d_model": 16, "heads": 2, "layers": 1, "unimodal_weight": 0.5}
    params = tiny_params(tiny_cache, tmp_path, epochs=2, modality_dropout=0.5, model=model)
    assert modality_dropout(params) == 0.5
    setup, res = fit_fold(params, tiny_cache, 0)
    batches = list(setup.train_loader)
    gone = [(~b[f"{m}_mask"].any(1)).sum() for b in batches for m in ("audio", "video")]
    assert sum(int(g) for g in gone) > 0  # some clips lost a modality
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    _, again = fit_fold(params, tiny_cache, 0)
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in res.history]


def test_unimodal_model_ignores_modality_dropout(tiny_cache, tmp_path):
    params = tiny_params(tiny_cache, tmp_path, modality_dropout=0.5)  # audio_only
    assert modality_dropout(params) == 0.0


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


# ---- `aver train` stopped by SIGTERM or SIGKILL -------------------------------------------------

EPOCHS = 12


def _train_params(work: Path, cache: Path, **train: object) -> Path:
    """params.yaml for a seconds-long `aver train` in `work` (MLflow store: work/mlruns.db)."""
    train = {"epochs": EPOCHS, "early_stop_patience": None, **train}
    raw = tiny_params(cache, work, **train).model_dump(mode="json")
    raw["tracking"]["log_model"] = False
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _start_train(work: Path, env: dict[str, str], epoch: int) -> subprocess.Popen[str]:
    """`aver train` in `work`, returned once it has checkpointed `epoch` epochs."""
    env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aver.cli", "train", "--params", "params.yaml"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = work / "models" / "checkpoints" / "fold-0" / "last.pt"
    deadline = time.monotonic() + 180
    while not (last.exists() and checkpoints.load(last)["epoch"] >= epoch):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"train ended ({proc.returncode}) or stalled: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc


def _rerun_train(work: Path, env: dict[str, str]) -> dict:
    env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-m", "aver.cli", "train", "--params", "params.yaml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "models" / "train_summary.json").read_text())


def _session(work: Path) -> dict:
    return json.loads((work / "models" / "checkpoints" / "mlflow.json").read_text())


def test_sigterm_train_ends_runs_killed_keeps_checkpoint_and_resumes(
    tiny_cache, tmp_path, venv_env
):
    _train_params(tmp_path, tiny_cache)
    proc = _start_train(tmp_path, venv_env, epoch=2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-3000:]
    assert "aver train: terminated (SIGTERM); rerun to resume" in err

    killed_at = checkpoints.load(tmp_path / "models/checkpoints/fold-0/last.pt")["epoch"]
    assert 2 <= killed_at < EPOCHS
    session = _session(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}")
    assert client.get_run(session["parent"]).info.status == "KILLED"
    assert client.get_run(session["folds"]["0"]).info.status == "KILLED"

    summary = _rerun_train(tmp_path, venv_env)
    fold = summary["folds"]["0"]
    assert fold["resumed_from_epoch"] == killed_at and fold["epochs_done"] == EPOCHS
    assert summary["mlflow"]["parent_run_id"] == session["parent"]  # reopened, not a new run
    child = summary["mlflow"]["fold_run_ids"]["0"]
    assert child == session["folds"]["0"]
    assert client.get_run(session["parent"]).info.status == "FINISHED"
    assert client.get_run(child).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(child, "val_uar")]
    assert sorted(steps) == list(range(1, EPOCHS + 1))


def test_rerun_after_sigkill_closes_stale_runs_even_when_params_changed(
    tiny_cache, tmp_path, venv_env
):
    _train_params(tmp_path, tiny_cache)
    proc = _start_train(tmp_path, venv_env, epoch=2)
    proc.kill()
    proc.wait(timeout=30)
    old = _session(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}")
    assert client.get_run(old["parent"]).info.status == "RUNNING"  # killed: never ended

    _train_params(tmp_path, tiny_cache, lr=3e-3, epochs=3)  # another config: new runs
    summary = _rerun_train(tmp_path, venv_env)

    assert summary["mlflow"]["parent_run_id"] != old["parent"]
    assert summary["folds"]["0"]["resumed_from_epoch"] == 0
    for run_id in (old["parent"], old["folds"]["0"]):
        run = client.get_run(run_id)
        assert run.info.status == "KILLED", run_id
        assert "ended without closing it" in run.data.tags["aver.closed"]
    assert f"pid {proc.pid}" in client.get_run(old["parent"]).data.tags["aver.closed"]
    assert client.get_run(summary["mlflow"]["parent_run_id"]).info.status == "FINISHED"


# ---- train.seeds: each fold once per seed ----------------------------------------------------


def test_train_seeds_gives_one_run_per_fold_and_seed(embedded_store, tiny_cache, tmp_path):
    import torch

    from aver.training.pipeline import run as train

    params = tiny_params(tiny_cache, tmp_path, prefix="seeds", epochs=1, seeds=[0, 1])
    params = params.model_copy(
        update={"tracking": params.tracking.model_copy(update={"log_model": False})}
    )
    summary = train(params)
    models = tmp_path / "models"
    assert summary["seeds"] == [0, 1] and summary["model_seed"] == 0
    assert [(r["fold"], r["seed"], r["path"]) for r in summary["runs"]] == [
        (0, 0, "folds/fold-0-seed-0.pt"),
        (0, 1, "folds/fold-0-seed-1.pt"),
    ]
    assert summary["folds"]["0"]["run_id"] == summary["runs"][0]["run_id"]  # the first seed
    assert summary["val"]["val_uar"]["n"] == 2  # mean/std over both runs
    files = [checkpoints.read_model_file(models / r["path"]) for r in summary["runs"]]
    assert [f.card.run["seed"] for f in files] == [0, 1]
    w0, w1 = (f.state_dict for f in files)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)  # other seeds, other weights
    model = checkpoints.read_model_file(models / "model.pt")
    assert all(torch.equal(model.state_dict[k], w0[k]) for k in w0)  # fold 0, first seed
    client = MlflowClient()
    ids = summary["mlflow"]["run_ids"]
    assert set(ids) == {"0-seed-0", "0-seed-1"}
    for run in summary["runs"]:
        child = client.get_run(run["run_id"])
        assert child.data.tags["fold"] == "0" and child.data.tags["seed"] == str(run["seed"])
        assert child.data.params["train.seed"] == str(run["seed"])
        assert child.info.run_name == f"fold-{run['key']}"
        assert ids[run["key"]] == run["run_id"]
    assert len({r["run_id"] for r in summary["runs"]}) == 2

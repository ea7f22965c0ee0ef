"""Sweeps on local Ray: nested MLflow runs, a crashed trial retried, a killed sweep resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.tuning.conftest import run_tune, tune_cmd, write_params

pytestmark = pytest.mark.e2e


def _env(venv_env, **extra):
    env = {k: v for k, v in venv_env.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(extra)
    return env


def _runs(work):
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlruns.db'}")
    exp = client.get_experiment_by_name("aver-demo")
    return client, client.search_runs([exp.experiment_id]) if exp else []


def test_sweep_nests_trials_retries_a_crash_and_writes_best_params(tmp_path, tiny_cache, venv_env):
    params = write_params(tmp_path, tiny_cache)
    marker = tmp_path / "failed-once"
    run_tune(params, _env(venv_env, AVER_TUNE_FAIL_ONCE=str(marker)))

    assert marker.exists(), "the injected failure never fired"
    table = pd.read_csv(tmp_path / "reports/tune/results.csv", keep_default_na=False)
    # The crashed trial was retried (FailureConfig): all 3 trials finished without error.
    assert len(table) == 3 and (table["error"] == "").all()
    assert table["val_uar"].between(0, 1).all()
    best = yaml.safe_load((tmp_path / "reports/tune/best_params.yaml").read_text())
    assert set(best) == {"train.lr", "train.weight_decay"}
    top = table.sort_values("val_uar", ascending=False).iloc[0]
    assert best["train.lr"] == pytest.approx(top["train.lr"])
    assert 1e-4 <= best["train.lr"] <= 1e-2
    assert (tmp_path / "reports/tune/plots/sweep.png").stat().st_size > 1000

    client, runs = _runs(tmp_path)
    sweeps = [r for r in runs if r.data.tags.get("aver.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    assert len(sweeps) == 1
    parent = sweeps[0].info.run_id
    assert len(trials) == 3
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in trials)
    for r in trials:
        history = client.get_metric_history(r.info.run_id, "val_uar")
        assert [m.step for m in history] == [1, 2] or len(history) >= 1  # ASHA may stop at 1
        assert "train.lr" in r.data.params
    assert sweeps[0].data.metrics["best_val_uar"] == pytest.approx(table["val_uar"].max())
    artifacts = {a.path for a in client.list_artifacts(parent, "sweep")}
    assert {"sweep/best_params.yaml", "sweep/results.csv", "sweep/sweep.png"} <= artifacts


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path, tiny_cache, venv_env):
    params = write_params(tmp_path, tiny_cache, num_samples=4, max_concurrent=1, scheduler="fifo")
    env = _env(venv_env, TUNE_GLOBAL_CHECKPOINT_S="0")
    proc = subprocess.Popen(
        tune_cmd(params),
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    finished_before: set[str] = set()
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(1)
            # Query the store only once the sweep has created it (its parent run is recorded
            # beside Ray's state): two processes migrating a new sqlite store at once race.
            if any((tmp_path / "ray").glob("*.aver.json")):
                _, runs = _runs(tmp_path)
                finished_before = {
                    r.info.run_name
                    for r in runs
                    if r.data.tags.get("aver.kind") == "trial" and r.info.status == "FINISHED"
                }
                if len(finished_before) >= 2:
                    time.sleep(2)  # let Ray persist the experiment state
                    break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 2 <= len(finished_before) < 4, "the sweep was not interrupted midway"

    run_tune(params, env)

    _, runs = _runs(tmp_path)
    trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    names = [r.info.run_name for r in trials]
    # Trials finished before the kill were not run again, and every trial finished.
    for name in finished_before:
        assert names.count(name) == 1, f"{name} ran again after the resume"
    finished = {r.info.run_name for r in trials if r.info.status == "FINISHED"}
    assert len(finished) == 4
    table = pd.read_csv(tmp_path / "reports/tune/results.csv", keep_default_na=False)
    assert len(table) == 4 and (table["error"] == "").all()
    assert len({r.data.tags["mlflow.parentRunId"] for r in trials}) == 1

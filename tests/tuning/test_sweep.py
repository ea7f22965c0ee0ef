"""Sweeps on local Ray: nested MLflow runs, a crashed trial retried, a killed sweep resumed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from aver.config import Params, flatten
from tests.tuning.conftest import fault_env, run_tune, tune_cmd, write_params

pytestmark = pytest.mark.e2e


def _env(venv_env, **extra):
    env = {k: v for k, v in venv_env.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(extra)
    return env


def _runs(work):
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlruns.db'}")
    exp = client.get_experiment_by_name("aver-demo")
    return client, client.search_runs([exp.experiment_id]) if exp else []


def _reported(work) -> dict[str, list[dict]]:
    """What each trial reported to Ray (its result.json rows), by trial id."""
    out: dict[str, list[dict]] = {}
    for path in sorted((work / "ray").glob("*/*_trial_*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            out[rows[0]["trial_id"]] = rows
    return out


def _store_ready(work) -> bool:
    """The sweep created its MLflow store and parent run (recorded beside Ray's state).

    Query the store only then: two processes migrating a new sqlite store at once race.
    """
    return any((work / "ray").glob("*.aver.json"))


def test_sweep_nests_trials_retries_a_crash_and_writes_best_params(tmp_path, tiny_cache, venv_env):
    # FIFO: the injected crash comes after epoch 1, where ASHA might stop the trial instead
    params = write_params(tmp_path, tiny_cache, scheduler="fifo")
    marker = tmp_path / "failed-once"
    run_tune(params, fault_env(_env(venv_env), AVER_TUNE_FAIL_ONCE=str(marker)), faults=True)

    assert marker.exists(), "the injected failure never fired"
    table = pd.read_csv(tmp_path / "reports/tune/results.csv", keep_default_na=False)
    # The crashed trial was retried (FailureConfig): all 3 trials finished without error.
    assert len(table) == 3 and (table["error"] == "").all()
    # ... from its epoch-1 checkpoint, not from scratch: epochs 1 then 2, each reported once.
    reported = _reported(tmp_path)
    retried = [rows for rows in reported.values() if any(r["resumed_from_epoch"] for r in rows)]
    assert len(retried) == 1, reported
    assert [(r["epoch"], r["resumed_from_epoch"]) for r in retried[0]] == [(1, 0), (2, 1)]
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
        assert [m.step for m in history] == [1, 2]
        assert "train.lr" in r.data.params
    assert sweeps[0].info.status == "FINISHED"
    assert all(r.info.status == "FINISHED" for r in trials)  # the retried one reopened its run
    assert sweeps[0].data.metrics["best_val_uar"] == pytest.approx(table["val_uar"].max())
    artifacts = {a.path for a in client.list_artifacts(parent, "sweep")}
    assert {"sweep/best_params.yaml", "sweep/results.csv", "sweep/sweep.png"} <= artifacts


# slow (about a minute or more); a rerun resuming the sweep is tested after SIGTERM in this file
@pytest.mark.slow
def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path, tiny_cache, venv_env):
    params = write_params(
        tmp_path, tiny_cache, num_samples=4, max_epochs=4, max_concurrent=1, scheduler="fifo"
    )
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
            time.sleep(0.2)
            if _store_ready(tmp_path):
                _, runs = _runs(tmp_path)
                trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
                finished_before = {r.info.run_name for r in trials if r.info.status == "FINISHED"}
                # kill mid-trial: its MLflow run is open, so the rerun must close or reopen it
                if len(finished_before) >= 2 and any(r.info.status == "RUNNING" for r in trials):
                    time.sleep(0.5)  # let Ray persist the experiment state
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
    # The killed process's runs were closed or reopened: nothing is left RUNNING.
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    for r in trials:
        assert r.info.status == "FINISHED" or "aver.closed" in r.data.tags, r
    sweeps = [r for r in runs if r.data.tags.get("aver.kind") == "sweep"]
    assert len(sweeps) == 1 and sweeps[0].info.status == "FINISHED"


def test_sigterm_stops_the_sweep_and_a_rerun_resumes_the_trial_mid_way(
    tmp_path, tiny_cache, venv_env
):
    params = write_params(
        tmp_path, tiny_cache, num_samples=2, max_epochs=6, max_concurrent=1, scheduler="fifo"
    )
    env = _env(venv_env)
    proc = subprocess.Popen(
        tune_cmd(params),
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 300
        while not any(len(rows) >= 2 for rows in _reported(tmp_path).values()):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "no trial reported two epochs"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` does: Ray's processes get it too
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err[-3000:]
    assert "aver tune: terminated (SIGTERM)" in err
    before = {trial: rows[-1]["epoch"] for trial, rows in _reported(tmp_path).items()}
    stopped = [trial for trial, epoch in before.items() if epoch < 6]
    assert len(stopped) == 1, before

    _, runs = _runs(tmp_path)
    sweeps = [r for r in runs if r.data.tags.get("aver.kind") == "sweep"]
    assert [r.info.status for r in sweeps] == ["KILLED"]
    trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    assert trials and not [r for r in trials if r.info.status == "RUNNING"]
    (cut,) = [r for r in trials if r.data.tags["aver.trial_id"] == stopped[0]]
    assert cut.info.status == "KILLED" and "stopped" in cut.data.tags["aver.closed"]

    run_tune(params, env)

    rows = _reported(tmp_path)[stopped[0]]
    restored = [r for r in rows if r["resumed_from_epoch"]]
    assert restored, f"the trial restarted from epoch 0: {rows}"
    start = restored[0]["resumed_from_epoch"]
    assert start >= before[stopped[0]] - 1  # at most the epoch in flight is redone
    assert [r["epoch"] for r in restored] == list(range(start + 1, 7))
    client, runs = _runs(tmp_path)
    sweeps = [r for r in runs if r.data.tags.get("aver.kind") == "sweep"]
    assert len(sweeps) == 1 and sweeps[0].info.status == "FINISHED"
    assert sweeps[0].info.run_id == cut.data.tags["mlflow.parentRunId"]  # reopened
    trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    assert len(trials) == 2 and {r.info.status for r in trials} == {"FINISHED"}
    steps = [m.step for m in client.get_metric_history(cut.info.run_id, "val_uar")]
    assert sorted(steps) == list(range(1, 7))  # one MLflow run per trial, each epoch once


def test_parent_runs_while_trials_run_and_max_concurrent_holds_with_random_search(
    tmp_path, tiny_cache, venv_env
):
    # 2 CPUs for Ray and 1 per trial: without the limit two trials would run at once.
    params = write_params(tmp_path, tiny_cache, num_samples=3, max_concurrent=1, scheduler="fifo")
    log = tmp_path / "tune.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            tune_cmd(params),
            cwd=tmp_path,
            env=_env(venv_env),
            start_new_session=True,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    polls: list[tuple[str, int]] = []  # (parent status, trials RUNNING) while the sweep runs
    try:
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.3)
            if _store_ready(tmp_path):
                _, runs = _runs(tmp_path)
                parent = [r for r in runs if r.data.tags.get("aver.kind") == "sweep"]
                running = [
                    r
                    for r in runs
                    if r.data.tags.get("aver.kind") == "trial" and r.info.status == "RUNNING"
                ]
                if parent:
                    polls.append((parent[0].info.status, len(running)))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]

    assert any(n >= 1 for _, n in polls), f"no poll saw a trial running: {polls}"
    assert all(status == "RUNNING" for status, n in polls if n), polls
    assert max(n for _, n in polls) <= 1, polls
    assert "will be ignored" not in text  # Ray's note that it drops max_concurrent_trials
    _, runs = _runs(tmp_path)
    (parent,) = [r for r in runs if r.data.tags.get("aver.kind") == "sweep"]
    assert parent.info.status == "FINISHED"
    trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    assert len(trials) == 3
    spans = sorted((r.info.start_time, r.info.end_time) for r in trials)
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(spans)), spans


def test_sweep_whose_trials_all_fail_ends_failed(tmp_path, tiny_cache, venv_env):
    params = write_params(tmp_path, tiny_cache, num_samples=2, max_failures=0)
    proc = subprocess.run(
        tune_cmd(params, faults=True),
        cwd=tmp_path,
        env=fault_env(_env(venv_env), AVER_TUNE_FAIL_ALWAYS="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "every trial failed" in proc.stderr
    table = pd.read_csv(tmp_path / "reports/tune/results.csv", keep_default_na=False)
    assert len(table) == 2 and (table["error"] != "").all()  # results.csv says which and why
    assert "injected trial failure" in proc.stdout + proc.stderr
    _, runs = _runs(tmp_path)
    assert [r.info.status for r in runs if r.data.tags.get("aver.kind") == "sweep"] == ["FAILED"]
    trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    assert not [r for r in trials if r.info.status == "RUNNING"]


def test_sweep_tunes_the_preset_model_and_trials_log_their_whole_config(
    tmp_path, tiny_cache, venv_env
):
    """`train.preset: avtca_paper` makes the sweep tune AVT-CA (what `train` then trains), and
    each trial logs the fully resolved config it ran with: the preset's keys, the sampled ones."""
    params = write_params(tmp_path, tiny_cache, num_samples=1, max_epochs=1, scheduler="fifo")
    raw = yaml.safe_load(params.read_text())
    raw["train"]["preset"] = "avtca_paper"
    params.write_text(yaml.safe_dump(raw))
    run_tune(params, _env(venv_env))

    client, runs = _runs(tmp_path)
    (trial,) = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    path = client.download_artifacts(trial.info.run_id, "config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(path).read_text())
    assert config["train"]["model"]["name"] == "avtca"
    assert config["train"]["optimizer"] == "adam" and config["train"]["batch_size"] == 8
    assert config["train"]["lr"] == pytest.approx(float(trial.data.params["train.lr"]))
    assert config["train"]["epochs"] == 1  # tune.max_epochs
    logged = trial.data.params  # the same config, flattened, as the trial run's params
    assert set(flatten(Params.model_validate(config))) <= set(logged)
    assert logged["train.model.name"] == "avtca" and logged["train.epochs"] == "1"

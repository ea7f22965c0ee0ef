"""train.executor ray: the shared fit as DDP over 2 Ray Train workers (gloo) on a local Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from aver.errors import ConfigError
from aver.training import checkpoints, ddp
from aver.training.folds import prepare_fold
from aver.training.loop import FitResult
from aver.training.pipeline import run as train
from tests.tracking.conftest import tiny_params

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 4


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """A private local Ray (2 CPUs) for this module; its GCS address. Shut down at the end."""
    import ray

    from aver.parallel import ray_init

    if ray.is_initialized():
        pytest.skip("another Ray is already initialised in this process")
    ray_init(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": ddp.SRC}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _runs(client: MlflowClient, exp_id: str, parent: str | None = None) -> list:
    query = f"tags.`mlflow.parentRunId` = '{parent}'" if parent else ""
    return client.search_runs([exp_id], query)


def test_ray_executor_is_one_ddp_run_with_local_outputs(
    embedded_store, tiny_cache, tmp_path, local_ray, monkeypatch
):
    seen: list[FitResult] = []
    fit_on_ray = ddp.fit_on_ray

    def spy(*args, **kwargs) -> FitResult:
        seen.append(fit_on_ray(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(ddp, "fit_on_ray", spy)
    common = {"epochs": EPOCHS, "early_stop_patience": None, "lr": 0.01}
    params = tiny_params(
        tiny_cache, tmp_path / "ray", prefix="ddp", executor="ray", workers=2, **common
    )
    t0 = time.perf_counter()
    summary = train(params)
    print(f"ray executor (2 workers, {EPOCHS} epochs): {time.perf_counter() - t0:.1f} s")
    local = train(tiny_params(tiny_cache, tmp_path / "local", prefix="ddp", **common))

    # the same outputs and summary as a local run
    for root in (tmp_path / "ray" / "models", tmp_path / "local" / "models"):
        for name in ("model.pt", "folds/fold-0.pt", "train_summary.json", "plots/curves.csv"):
            assert (root / name).is_file(), root / name
    assert summary.keys() == local.keys()
    assert summary["folds"]["0"].keys() == local["folds"]["0"].keys()
    assert summary["folds"]["0"]["epochs_done"] == EPOCHS
    assert summary["folds"]["0"]["resumed_from_epoch"] == 0
    assert summary["mlflow"]["version"] == "1" and local["mlflow"]["version"] == "2"
    model = checkpoints.read_model_file(tmp_path / "ray" / "models" / "model.pt")
    assert model.card.run["mlflow_run_id"] == summary["mlflow"]["fold_run_ids"]["0"]

    # exactly one parent run (+ its fold run) per executor; rank 0 alone logged the epochs
    client = MlflowClient()
    exp_id = summary["mlflow"]["experiment_id"]
    parents = [r for r in _runs(client, exp_id) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    ray_parent = summary["mlflow"]["parent_run_id"]
    children = _runs(client, exp_id, ray_parent)
    assert [c.info.run_id for c in children] == [summary["mlflow"]["fold_run_ids"]["0"]]
    child = children[0]
    assert child.info.status == "FINISHED" and child.data.params["train.executor"] == "ray"
    local_child = _runs(client, exp_id, local["mlflow"]["parent_run_id"])[0]
    assert child.data.metrics.keys() == local_child.data.metrics.keys()
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_uar")]
    assert steps == list(range(1, EPOCHS + 1))  # once per epoch: no second rank logging

    # DDP: the global batch is kept, both ranks hold the same weights after every epoch
    (res,) = seen
    info = res.extra["ddp"]
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    assert info["batch_per_worker"] == params.train.batch_size // 2
    local_loader = prepare_fold(params, tiny_cache, 0).train_loader
    assert info["steps_per_epoch"] == len(local_loader)
    assert len(info["param_checksums"]) == EPOCHS
    first = info["param_checksums"][0]
    assert all(a == b for a, b in info["param_checksums"]), info["param_checksums"]
    assert first[0] != info["param_checksums"][-1][0]  # and they did change
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0], losses
    # the Ray checkpoint holds the usual last.pt
    assert _epochs(tmp_path / "ray" / "models" / "checkpoints" / "ray" / "fold-0") == {EPOCHS}


# slow (over a minute); local-executor resume is tested in tests/training/test_stage.py
@pytest.mark.slow
def test_killed_ray_run_resumes_from_its_checkpoint(
    embedded_store, tiny_cache, tmp_path, local_ray
):
    epochs = 8
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "tests.training.train_stage_worker",
        str(tiny_cache),
        str(out),
        str(epochs),
        "ray",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_ADDRESS": local_ray,  # the drivers join this module's Ray (on 127.0.0.1)
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    storage = out / "models" / "checkpoints" / "ray" / "fold-0"
    proc = subprocess.Popen(
        cmd, cwd=embedded_store, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            if _registered_epoch(storage):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the driver finished (or failed) before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _registered_epoch(storage)  # what Ray Train restores
    assert killed_at is not None and 1 <= killed_at < epochs
    done = subprocess.run(
        cmd, cwd=embedded_store, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "models" / "train_summary.json").read_text())
    assert summary["folds"]["0"]["resumed_from_epoch"] == killed_at  # not from epoch 0
    assert summary["folds"]["0"]["epochs_done"] == epochs
    client = MlflowClient(tracking_uri=f"sqlite:///{embedded_store / 'mlruns.db'}")
    child = summary["mlflow"]["fold_run_ids"]["0"]
    steps = {m.step for m in client.get_metric_history(child, "val_uar")}
    assert steps == set(range(1, epochs + 1))
    assert client.get_run(summary["mlflow"]["parent_run_id"]).info.status == "FINISHED"


def test_batch_must_split_over_workers(tiny_cache, tmp_path):
    params = tiny_params(tiny_cache, tmp_path, executor="ray", workers=3, batch_size=4)
    with pytest.raises(ConfigError, match="does not split over"):
        train(params)


def _registered_epoch(storage: Path) -> int | None:
    """Epoch of the latest checkpoint Ray Train registered for the run in `storage`."""
    try:
        snap = json.loads((storage / "checkpoint_manager_snapshot.json").read_text())
        name = snap["latest_checkpoint_result"]["checkpoint_dir_name"]
        return int(checkpoints.load(storage / name / "last.pt")["epoch"])
    except Exception:  # not written yet (or being written)
        return None


def _epochs(storage: Path) -> set[int]:
    """Epochs of the readable last.pt files in Ray Train's checkpoint dirs."""
    found = set()
    for path in storage.glob("checkpoint_*/last.pt"):
        try:
            found.add(int(checkpoints.load(path)["epoch"]))
        except Exception:  # being written
            continue
    return found


def test_a_workers_aver_error_surfaces_as_itself():
    from ray.train import WorkerGroupError

    from aver.training.loop import TrainingError

    boom = TrainingError("the loss became nan", fix="lower train.lr")
    wrapped = WorkerGroupError("rank 1 failed", {1: RuntimeError("x"), 0: boom})
    assert ddp._user_error(wrapped) is boom
    assert ddp._user_error(WorkerGroupError("oom", {0: MemoryError()})) is None

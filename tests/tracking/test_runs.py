"""Tracking against real MLflow stores: default embedded sqlite, env override, nesting, tags."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from aver.config import TrackingConfig
from aver.tracking import runs


def test_default_store_is_embedded_sqlite_with_local_artifacts(embedded_store: Path):
    cfg = TrackingConfig()
    assert runs.tracking_uri(cfg) == "sqlite:///mlruns.db"
    exp_id = runs.setup(cfg, "demo")
    assert (embedded_store / "mlruns.db").exists()
    exp = MlflowClient().get_experiment(exp_id)
    assert exp.name == "aver-demo"
    assert exp.artifact_location == (embedded_store / "mlartifacts").resolve().as_uri()
    assert runs.setup(cfg, "demo") == exp_id  # idempotent
    assert runs.setup(TrackingConfig(experiment_prefix="x"), "ravdess") != exp_id


def test_env_overrides_params(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/env.db")
    assert runs.tracking_uri(TrackingConfig(tracking_uri="sqlite:///p.db")) == (
        f"sqlite:///{tmp_path}/env.db"
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert runs.tracking_uri(TrackingConfig(tracking_uri="sqlite:///p.db")) == "sqlite:///p.db"
    assert runs.is_local_store("sqlite:///x.db") and runs.is_local_store("/abs/mlruns")
    assert not runs.is_local_store("http://127.0.0.1:5000")


def _nested_runs(exp_id: str) -> tuple[str, str]:
    with runs.start(exp_id, run_name="parent", tags={"k": "v"}) as parent:
        runs.log_params({"train.lr": 0.01, "train.grad_clip": None})
        with runs.start(exp_id, run_name="fold-0", parent_run_id=parent.info.run_id) as child:
            for epoch in (1, 2, 3):
                runs.log_epoch(
                    {"val_uar": 0.1 * epoch, "lr": 1.0, "epoch": epoch, "bad": float("nan")}, epoch
                )
        child_id = child.info.run_id
    return parent.info.run_id, child_id


@pytest.mark.parametrize("store", ["embedded_store", "server_store"])
def test_nested_runs_params_and_epoch_metrics(store, request):
    request.getfixturevalue(store)
    exp_id = runs.setup(TrackingConfig(), "demo")
    parent_id, child_id = _nested_runs(exp_id)
    client = MlflowClient()
    parent, child = client.get_run(parent_id), client.get_run(child_id)
    assert child.data.tags[runs.PARENT_TAG] == parent_id
    assert parent.info.status == child.info.status == "FINISHED"
    assert parent.data.params == {"train.lr": "0.01", "train.grad_clip": "null"}
    hist = client.get_metric_history(child_id, "val_uar")
    assert [(m.step, round(m.value, 6)) for m in hist] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert "bad" not in child.data.metrics and "epoch" not in child.data.metrics
    assert runs.logged_steps(child_id, "val_uar") == {1, 2, 3}


def test_failed_run_is_marked_and_can_be_reopened(embedded_store: Path):
    exp_id = runs.setup(TrackingConfig(), "demo")
    with pytest.raises(RuntimeError), runs.start(exp_id, run_name="r") as run:
        runs.log_epoch({"val_uar": 0.5}, 1)
        raise RuntimeError("boom")
    run_id = run.info.run_id
    assert MlflowClient().get_run(run_id).info.status == "FAILED"
    with runs.start(exp_id, run_name="r", run_id=run_id) as again:
        runs.log_params({"a": 1})
        runs.log_params({"a": 1, "b": 2})  # already-logged params are skipped, not an error
        runs.log_epoch({"val_uar": 0.6}, 2)
    assert again.info.run_id == run_id
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"a": "1", "b": "2"}
    assert runs.logged_steps(run_id, "val_uar") == {1, 2}
    with runs.start(exp_id, run_name="new", run_id="0" * 32) as fresh:  # unknown id: new run
        pass
    assert fresh.info.run_id != "0" * 32


def test_data_fingerprint_follows_cache_content_and_dvc_lock(tmp_path: Path):
    cache = tmp_path / "data" / "features"
    cache.mkdir(parents=True)
    (cache / "index.csv").write_text("clip_id,label\na,x\n")
    (cache / "meta.json").write_text("{}")
    first = runs.data_fingerprint(cache, tmp_path / "dvc.lock")
    assert set(first) == {"data_fingerprint"}
    (cache / "index.csv").write_text("clip_id,label\na,y\n")
    second = runs.data_fingerprint(cache, tmp_path / "dvc.lock")
    assert second["data_fingerprint"] != first["data_fingerprint"]
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  cache:\n    cmd: python stages/cache.py\n    outs:\n"
        "    - path: data/features\n      md5: abc123.dir\n      size: 10\n"
    )
    assert runs.data_fingerprint(cache, tmp_path / "dvc.lock")["dvc_cache_md5"] == "abc123.dir"


def test_unreachable_server_fails_fast_with_a_fix(monkeypatch: pytest.MonkeyPatch):
    import socket
    import time

    from aver.errors import AverError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(AverError, match="not reachable") as err:
        runs.setup(TrackingConfig(), "demo")
    assert time.monotonic() - t0 < 15 and "MLFLOW_TRACKING_URI" in str(err.value)
    mlflow.set_tracking_uri(None)


def test_every_run_is_tagged_with_the_code_that_ran(embedded_store: Path):
    from aver.workspace import code_info, package_dir

    exp_id = runs.setup(TrackingConfig(), "demo")
    parent_id, child_id = _nested_runs(exp_id)
    info = code_info()
    assert info.path == str(package_dir()) == str(Path(runs.__file__).resolve().parents[1])
    for run_id in (parent_id, child_id):
        tags = MlflowClient().get_run(run_id).data.tags
        assert tags["aver.code_path"] == info.path
        assert tags["aver.code_commit"] == info.commit != ""
        assert tags["aver.code_dirty"] in ("True", "False")


def _dead_pid() -> str:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return str(proc.pid)


def test_close_stale_ends_dead_processes_runs_of_any_config(embedded_store: Path):
    import subprocess
    import sys

    exp_id = runs.setup(TrackingConfig(), "demo")
    client = MlflowClient()
    here, dead = runs.workspace(), _dead_pid()

    def make(name: str, *, parent: str | None = None, **tags: str) -> str:
        all_tags = {runs.PARENT_TAG: parent, **tags} if parent else tags
        return client.create_run(exp_id, run_name=name, tags=all_tags).info.run_id

    train = {runs.STAGE_TAG: "train", runs.WORKSPACE_TAG: here}
    # a killed train run (one config) with a fold run, and a killed one of another config
    killed = make("killed", **train, **{runs.PID_TAG: dead}, lr="0.1")
    killed_fold = make("killed-fold", parent=killed, **train, **{runs.PID_TAG: dead})
    other_config = make("other-config", **train, **{runs.PID_TAG: dead}, lr="0.2")
    # the run the rerun reopens: kept open, its stale child closed, its reopened child kept
    reopened = make("reopened", **train, **{runs.PID_TAG: dead})
    stale_child = make("stale-child", parent=reopened, **train)
    kept_child = make("kept-child", parent=reopened, **train)
    # left alone: a live process's run, another workspace, another stage
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = make("live", **train, **{runs.PID_TAG: str(sleeper.pid)})
        elsewhere = make(
            "elsewhere", **{**train, runs.WORKSPACE_TAG: "host:/other", runs.PID_TAG: dead}
        )
        tune = make("tune", **{**train, runs.STAGE_TAG: "tune", runs.PID_TAG: dead})
        closed = runs.close_stale(exp_id, "train", keep=[reopened, kept_child, None])
    finally:
        sleeper.kill()
        sleeper.wait()

    assert set(closed) == {killed, killed_fold, other_config, stale_child}
    for run_id in closed:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and run.info.end_time
        assert "without closing it" in run.data.tags[runs.CLOSED_TAG]
    assert f"pid {dead}" in client.get_run(killed).data.tags[runs.CLOSED_TAG]
    for run_id in (reopened, kept_child, live, elsewhere, tune):
        assert client.get_run(run_id).info.status == "RUNNING"

    # reopening a closed run clears the reason
    with runs.start(exp_id, run_name="killed", run_id=killed):
        pass
    run = client.get_run(killed)
    assert run.info.status == "FINISHED" and runs.CLOSED_TAG not in run.data.tags

"""The whole pipeline as a user meets it: `dvc repro` on a small demo, in a temp git repo."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.support.pipeline import dvc

pytestmark = pytest.mark.e2e

OUTPUTS = [
    "data/raw/index.csv",
    "data/raw/dataset.json",
    "data/interim/manifest.csv",
    "data/interim/failures.csv",
    "data/faces/index.csv",
    "data/faces/plots/contact_sheet.png",
    "data/faces/plots/detection_rate.png",
    "data/features/index.csv",
    "data/features/meta.json",
    "data/features/stats.json",
    "reports/tune/best_params.yaml",
    "reports/tune/results.csv",
    "models/model.pt",
    "models/train_summary.json",
    "models/plots/curves.csv",
    "reports/metrics.json",
    "reports/confusion.csv",
    "reports/confusion.png",
]
CACHED_OUTS = [
    "data/raw",
    "data/interim",
    "data/faces",
    "data/features",
    "reports/tune",
    "models/model.pt",
    "models/folds",
    "models/plots",
]


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_pipeline_outputs_metrics_and_tracking(demo_pipeline):
    repo, _ = demo_pipeline
    for rel in OUTPUTS:
        assert (repo / rel).is_file() and (repo / rel).stat().st_size > 0, rel

    metrics = json.loads((repo / "reports/metrics.json").read_text())
    classes = json.loads((repo / "data/raw/dataset.json").read_text())["classes"]
    chance = 1 / len(classes)
    assert metrics["leaky"] is False and metrics["protocol"] == "speaker_kfold"
    assert metrics["accuracy"] >= chance + 0.2, metrics  # well above chance (0.25)
    assert metrics["uar"] >= chance + 0.2, metrics

    # The test split is speaker-disjoint from training (fold 0 of the cache's split columns).
    index = pd.read_csv(repo / "data/features/index.csv", dtype={"speaker": str})
    test_speakers = set(index.loc[index["split_0"] == "test", "speaker"])
    train_speakers = set(index.loc[index["split_0"] == "train", "speaker"])
    assert test_speakers and not test_speakers & train_speakers

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlruns.db'}")
    exp = client.get_experiment_by_name("aver-demo")
    runs = client.search_runs([exp.experiment_id])
    train_runs = [
        r
        for r in runs
        if r.data.tags.get("aver.stage") == "train" and "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(train_runs) == 1, [r.data.tags for r in runs]
    parent = train_runs[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert children, "fold runs are not nested under the train run"
    # The run records which DVC-tracked data version it used (the cache's md5 in dvc.lock).
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    cache_md5 = next(
        o["md5"] for o in lock["stages"]["cache"]["outs"] if o["path"] == "data/features"
    )
    assert parent.data.tags["dvc_cache_md5"] == cache_md5
    version = client.get_model_version_by_alias("aver-demo", "champion")
    assert int(version.version) >= 1


def test_repro_is_a_noop_and_param_changes_rerun_only_downstream(demo_pipeline, tmp_path):
    repo, env = demo_pipeline
    out = dvc(repo, env, "repro")
    assert _ran(out) == set(), out
    assert "up to date" in out

    repo, env = _copy(repo, env, tmp_path / "repo")  # the session's model stays as trained
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["train"]["lr"] = params["train"]["lr"] * 2
    params["train"]["epochs"] = 2  # a short retrain: only which stages run matters here
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    # tune searches lr itself, so it does not depend on train.lr: only train + evaluate.
    assert _ran(dvc(repo, env, "repro")) == {"train", "evaluate"}
    params["cache"]["n_mels"] = 40
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    # An audio feature param invalidates cache (and so what follows), never align/extract.
    assert _ran(dvc(repo, env, "repro", "--dry")) == {"cache"}
    # Back to the committed params: train would run again, nothing upstream of it (a dry run
    # lists evaluate only when its inputs already differ).
    params_path.write_text(original)
    ran = _ran(dvc(repo, env, "repro", "--dry"))
    assert "train" in ran and ran <= {"train", "evaluate"}, ran


def _copy(repo, env, dest):
    """A private copy of the fixture repo (git, DVC cache, outputs) for drills that mutate it,
    and the env that runs its own code."""
    shutil.copytree(repo, dest, symlinks=True)
    return dest, {**env, "PYTHONPATH": str(dest / "src")}


def test_dvc_exp_run_is_listed_in_exp_show(demo_pipeline, tmp_path):
    repo, env = demo_pipeline
    repo, env = _copy(repo, env, tmp_path / "repo")
    dvc(repo, env, "exp", "run", "-n", "lr-half", "-S", "train.lr=0.0005", "-S", "train.epochs=2")
    shown = dvc(repo, env, "exp", "show", "--json")
    assert "lr-half" in shown and "0.0005" in shown
    assert "lr-half" in dvc(repo, env, "exp", "list", "--all-commits")


def test_push_delete_pull_restores_a_clean_status(demo_pipeline, tmp_path):
    repo, env = demo_pipeline
    repo, env = _copy(repo, env, tmp_path / "repo")
    remote = (repo / ".dvc" / "../../aver-dvc-storage").resolve()
    assert remote.parent == tmp_path
    assert "up to date" in dvc(repo, env, "status")
    dvc(repo, env, "push")
    assert remote.is_dir() and any(remote.rglob("*"))
    shutil.rmtree(repo / ".dvc" / "cache")
    for rel in CACHED_OUTS:
        path = repo / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert "up to date" not in dvc(repo, env, "status")
    dvc(repo, env, "pull")
    for rel in CACHED_OUTS:
        assert (repo / rel).exists(), rel
    assert "up to date" in dvc(repo, env, "status")

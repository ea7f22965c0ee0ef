"""The train and evaluate stages as MLflow sees them (embedded sqlite store and a server)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from aver.cli import main as cli_main
from aver.config import flatten
from aver.evaluation.pipeline import run as evaluate
from aver.inference import load_trained_model
from aver.redact import redact_text
from aver.resolution import resolve
from aver.tracking import registry, runs
from aver.training.pipeline import run as train
from tests.tracking.conftest import tiny_params

EPOCH_METRICS = (
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
    "val_uar",
    "val_macro_f1",
    "lr",
)


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def test_train_and_evaluate_record_everything(embedded_store, tiny_cache, tmp_path, capsys):
    params = tiny_params(tiny_cache, tmp_path, prefix="pipe", folds=[0, 1])
    summary = train(params)
    client = MlflowClient()
    ml = summary["mlflow"]
    assert ml["experiment"] == "pipe-demo"
    assert (embedded_store / "mlruns.db").exists()
    parent = client.get_run(ml["parent_run_id"])
    # all params flattened (the fully resolved config), provenance tags
    config = {
        k: redact_text("null" if v is None else str(v))[: runs.MAX_PARAM_CHARS]
        for k, v in flatten(resolve(params).params).items()
    }
    assert {k: parent.data.params[k] for k in config} == config
    assert "config/resolved_params.yaml" in _artifacts(client, parent.info.run_id)
    assert parent.data.params["train.lr"] == str(params.train.lr)
    assert parent.data.params["train.model.d_model"] == "16"
    assert parent.data.params["cache.out"] == str(tiny_cache)
    assert len(parent.data.tags["git_commit"]) in (40, len("unknown"))
    assert parent.data.tags["data_fingerprint"] == summary["data"]["data_fingerprint"]
    assert parent.data.tags["protocol"] == "speaker_kfold" and parent.data.tags["leaky"] == "False"
    # one child run per fold, nested, with per-epoch metrics at step = epoch
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert sorted(r.data.tags["fold"] for r in children) == ["0", "1"]
    for child in children:
        fold = child.data.tags["fold"]
        assert child.info.run_id == ml["fold_run_ids"][fold]
        assert child.data.params["fold"] == fold and child.info.status == "FINISHED"
        # the fully resolved config the fold ran with, as params and as YAML
        assert {k: child.data.params[k] for k in config} == config
        assert "config/resolved_params.yaml" in _artifacts(client, child.info.run_id)
        for key in EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == [1, 2]
        best = summary["folds"][fold]
        uars = [m.value for m in client.get_metric_history(child.info.run_id, "val_uar")]
        assert child.data.metrics["best_val_uar"] == pytest.approx(max(uars))
        assert best["val_uar"] == pytest.approx(max(uars))
        assert {
            "plots/confusion_val.png",
            "plots/per_class_val.csv",
            "plots/curves.png",
            "plots/curves.csv",
            "config/resolved_params.yaml",
        } <= _artifacts(client, child.info.run_id)
    assert {"plots/curves.png", "train_summary.json", "config/resolved_params.yaml"} <= (
        _artifacts(client, parent.info.run_id)
    )
    # mean/std across folds on the parent
    vals = [summary["folds"][f]["val_uar"] for f in ("0", "1")]
    assert parent.data.metrics["val_uar_mean"] == pytest.approx(np.mean(vals))
    assert parent.data.metrics["val_uar_std"] == pytest.approx(np.std(vals, ddof=1))

    # registered; the first version is the champion
    version = client.get_model_version("pipe-demo", ml["version"])
    assert float(version.tags["val_uar"]) == pytest.approx(summary["folds"]["0"]["val_uar"])
    assert str(registry.current_champion("pipe-demo").version) == ml["version"] == "1"
    # its model card: models/MODEL_CARD.md, the parent run's artifact, the version's description
    card_md = (tmp_path / "models" / "MODEL_CARD.md").read_text()
    assert version.description == card_md and "## Uses to avoid" in card_md
    assert "MODEL_CARD.md" in _artifacts(client, parent.info.run_id)
    assert f"| 0 | 0 | {summary['folds']['0']['val_uar']:.3f} |" in card_md
    assert "| 1 | 0 |" in card_md and "Not evaluated yet" in card_md
    assert "| train |" in card_md and "| angry |" in card_md

    # model.pt: weights_only, rebuilds the net; the pyfunc from the registry agrees with it
    raw = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    card = json.loads(raw["card"])
    assert card["classes"] == ["angry", "happy"] and card["run"]["fold"] == 0
    trained = load_trained_model(tmp_path / "models" / "model.pt")
    pyfunc = mlflow.pyfunc.load_model("models:/pipe-demo@champion")
    example = pyfunc.input_example
    probs = pyfunc.predict(example)
    with torch.no_grad():
        direct = torch.softmax(
            trained.model({k: torch.as_tensor(v) for k, v in example.items()}).logits, -1
        ).numpy()
    assert probs.shape == (1, 2) and np.allclose(probs, direct, atol=1e-5)
    assert pyfunc.metadata.signature is not None
    downloaded = registry.download_model_file("models:/pipe-demo@champion", tmp_path / "dl")
    assert torch.equal(
        torch.load(downloaded, weights_only=True)["state_dict"][next(iter(raw["state_dict"]))],
        next(iter(raw["state_dict"].values())),
    )

    # evaluate: reports + test metrics on the same runs
    doc = evaluate(params)
    written = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert written["uar"] == pytest.approx(doc["uar"]) and written["folds_evaluated"] == [0, 1]
    fold0 = client.get_run(ml["fold_run_ids"]["0"])
    assert fold0.data.metrics["test_uar"] == pytest.approx(doc["per_fold"]["0"]["uar"])
    parent = client.get_run(ml["parent_run_id"])
    assert parent.data.metrics["test_uar"] == pytest.approx(doc["uar"])
    assert {
        "evaluation/metrics.json",
        "evaluation/confusion.csv",
        "evaluation/confusion.png",
        "evaluation/per_class.csv",
    } <= _artifacts(client, parent.info.run_id)
    assert client.get_model_version("pipe-demo", "1").tags["test_uar"] == f"{doc['uar']:.6f}"
    # the card now holds the test metrics, everywhere it is published
    card_md = (tmp_path / "reports" / "MODEL_CARD.md").read_text()
    assert client.get_model_version("pipe-demo", "1").description == card_md
    assert f"UAR {doc['uar']:.3f}, bootstrap" in card_md and "Not evaluated yet" not in card_md
    assert registry.model_card_text("models:/pipe-demo@champion") == card_md
    cli_main(["predict", "--model", "models:/pipe-demo/1", "--card"])
    assert capsys.readouterr().out == card_md
    cli_main(["predict", "--model", str(tmp_path / "models" / "model.pt"), "--card"])
    assert capsys.readouterr().out.startswith("# Model card: audio_only (model file)")

    # retrain with other seeds: the champion is always the version with the best val UAR
    best = {"1": float(version.tags["val_uar"])}
    for seed in (1, 2):
        s = train(
            tiny_params(tiny_cache, tmp_path / f"seed{seed}", prefix="pipe", seed=seed, folds=[0])
        )
        best[s["mlflow"]["version"]] = s["folds"]["0"]["val_uar"]
        described = client.get_model_version("pipe-demo", s["mlflow"]["version"]).description
        assert "## Metrics" in described
        champion = str(registry.current_champion("pipe-demo").version)
        top = max(best.values())
        first_top = next(v for v in sorted(best, key=int) if best[v] == top)  # ties keep holder
        assert champion == first_top, best


def test_train_against_mlflow_server(server_store, tiny_cache, tmp_path):
    summary = train(tiny_params(tiny_cache, tmp_path, prefix="srv", epochs=1))
    ml = summary["mlflow"]
    client = MlflowClient()
    assert client._tracking_client.tracking_uri.startswith("http://127.0.0.1")
    child = client.get_run(ml["fold_run_ids"]["0"])
    assert child.data.tags["mlflow.parentRunId"] == ml["parent_run_id"]
    assert [m.step for m in client.get_metric_history(child.info.run_id, "val_uar")] == [1]
    assert "plots/confusion_val.png" in _artifacts(client, child.info.run_id)
    assert str(registry.current_champion("srv-demo").version) == ml["version"]
    path = registry.download_model_file("models:/srv-demo@champion", tmp_path / "dl")
    assert json.loads(torch.load(path, weights_only=True)["card"])["classes"] == ["angry", "happy"]

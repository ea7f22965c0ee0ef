"""The evaluate stage on a real trained model: files agree with each other and with the model."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from aver.errors import DataError
from aver.evaluation.pipeline import run as evaluate
from aver.features.cache import FeatureCache
from aver.features.loader import make_loader
from aver.inference import load_trained_model, predict
from aver.training.pipeline import run as train
from tests.tracking.conftest import tiny_params


def test_evaluate_writes_consistent_reports(embedded_store, tiny_cache, tmp_path, caplog):
    params = tiny_params(
        tiny_cache, tmp_path, prefix="evalstage", epochs=1, folds=[1], batch_size=8
    )
    params = params.model_copy(
        update={"tracking": params.tracking.model_copy(update={"log_model": False})}
    )
    train(params)
    doc = evaluate(params)
    reports = tmp_path / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(doc))
    assert metrics["fold"] == 1 and metrics["folds_evaluated"] == [1]
    assert metrics["protocol"] == "speaker_kfold" and metrics["leaky"] is False
    cache = FeatureCache(tiny_cache)
    pairs = pd.read_csv(reports / "confusion.csv")
    assert sorted(pairs["clip_id"]) == cache.split_ids(1, "test")  # each test clip once
    assert metrics["accuracy"] == pytest.approx((pairs["actual"] == pairs["predicted"]).mean())
    per_class = pd.read_csv(reports / "per_class.csv")
    assert per_class["support"].sum() == len(pairs) == metrics["n_test"]
    for row in per_class.itertuples():
        assert metrics["per_class_recall"][row[1]] == pytest.approx(row.recall)
    assert (reports / "confusion.png").stat().st_size > 1000
    # the fold's test speakers: in metrics.json, train_summary.json, the fold run, the cards
    speakers = sorted(set(cache.index.set_index("clip_id").loc[pairs["clip_id"], "speaker"]))
    assert metrics["per_fold"]["1"]["test_speakers"] == speakers
    assert metrics["per_run"][0]["test_speakers"] == speakers
    summary = json.loads((tmp_path / "models" / "train_summary.json").read_text())
    assert summary["runs"][0]["test_speakers"] == speakers
    fold_run = MlflowClient().get_run(summary["mlflow"]["fold_run_ids"]["1"])
    assert fold_run.data.params["test_speakers"] == ",".join(speakers)
    card = load_trained_model(tmp_path / "models" / "model.pt").card
    assert card.run["splits"]["test"]["speaker_ids"] == speakers
    text = (reports / "MODEL_CARD.md").read_text()
    assert f"- Test speakers (fold 1): {', '.join(speakers)}" in text
    assert f"| {metrics['n_test']} | {', '.join(speakers)} |" in text
    # the numbers are the model's: predict the test split directly
    trained = load_trained_model(tmp_path / "models" / "model.pt")
    p = predict(trained.model, make_loader(cache, 1, "test", 8, train=False))
    assert metrics["accuracy"] == pytest.approx(float(np.mean(p.y_true == p.y_pred)))
    # 95% intervals: bootstrap over the test clips around the value; one fold has no t interval
    for key in ("accuracy", "uar"):
        low, high = metrics[f"{key}_ci95_low"], metrics[f"{key}_ci95_high"]
        assert 0.0 <= low <= metrics[key] <= high <= 1.0
        assert metrics["intervals"][key] == {"runs": None, "bootstrap": [low, high]}
    assert metrics["accuracy_ci95_high"] > metrics["accuracy_ci95_low"] or metrics["accuracy"] in (
        0.0,
        1.0,
    )
    # a summary pointing at a run the store does not have: reports still written, a warning
    summary_path = tmp_path / "models" / "train_summary.json"
    summary = json.loads(summary_path.read_text())
    summary["mlflow"]["parent_run_id"] = "f" * 32
    summary_path.write_text(json.dumps(summary))
    with caplog.at_level(logging.WARNING):
        evaluate(params)
    assert "could not log evaluation" in caplog.text


def test_missing_training_output_is_actionable(tmp_path):
    params = tiny_params(tmp_path, tmp_path)
    with pytest.raises(DataError, match="dvc repro train") as err:
        evaluate(params)
    assert "train_summary.json" in str(err.value)


def test_evaluate_intervals_over_seeds(embedded_store, tiny_cache, tmp_path):
    """train.seeds [0, 1] on one fold: two runs, so a Student t interval across them."""
    from mlflow.tracking import MlflowClient

    from aver.evaluation.intervals import t_interval

    params = tiny_params(
        tiny_cache, tmp_path, prefix="evalseeds", epochs=1, folds=[1], seeds=[0, 1], batch_size=8
    )
    params = params.model_copy(
        update={"tracking": params.tracking.model_copy(update={"log_model": False})}
    )
    summary = train(params)
    doc = evaluate(params)
    assert doc["n_runs"] == 2 and doc["seeds"] == [0, 1]
    assert [(r["fold"], r["seed"]) for r in doc["per_run"]] == [(1, 0), (1, 1)]
    assert list(doc["per_fold"]) == ["1"]
    assert doc["per_fold"]["1"]["uar"] == doc["per_run"][0]["uar"]  # the first seed's run
    for key in ("accuracy", "uar", "macro_f1"):
        values = [r[key] for r in doc["per_run"]]
        assert doc[key] == pytest.approx(np.mean(values))
        assert doc[f"{key}_std"] == pytest.approx(np.std(values, ddof=1))
        runs = doc["intervals"][key]["runs"]
        assert runs is not None and runs == pytest.approx(list(t_interval(values)))
        low, high = doc["intervals"][key]["bootstrap"]
        assert 0.0 <= low <= high <= 1.0
        assert [doc[f"{key}_ci95_low"], doc[f"{key}_ci95_high"]] == [low, high]
    # each test clip once in the confusion pairs (the first seed's predictions)
    pairs = pd.read_csv(tmp_path / "reports" / "confusion.csv")
    assert sorted(pairs["clip_id"]) == FeatureCache(tiny_cache).split_ids(1, "test")
    # MLflow: test metrics on each (fold, seed) run, the across-runs interval on the parent
    client = MlflowClient()
    for r, run in zip(doc["per_run"], summary["runs"]):
        assert r["run_id"] == run["run_id"]
        got = client.get_run(run["run_id"]).data.metrics["test_uar"]
        assert got == pytest.approx(r["uar"])
    parent = client.get_run(summary["mlflow"]["parent_run_id"]).data.metrics
    assert parent["test_n_runs"] == 2
    assert parent["test_uar_runs_ci95_low"] == pytest.approx(doc["intervals"]["uar"]["runs"][0])


def test_evaluate_scores_whole_clips_as_predict_does(embedded_store, tmp_path):
    """A cache of whole clips (1 to 6 windows each): evaluate scores each test clip once, as the
    mean of its window probabilities, and predict's windows of the same clip give the same."""
    from aver.features.pipeline import face_loader
    from aver.inference import class_probabilities
    from aver.predict.model import input_settings
    from aver.predict.windows import WavReader, _window_arrays
    from aver.windows import mean_probabilities, window_starts
    from tests.features.conftest import build_cache, whole_clips

    root = tmp_path / "data"
    out = build_cache(root, whole_clips(), window_s=1.0, hop_s=0.5, max_clip_s=10.0)
    cache = FeatureCache(out)
    assert cache.index["n_windows"].max() == 6
    params = tiny_params(out, tmp_path, prefix="evalwhole", epochs=1, folds=[1], batch_size=4)
    params = params.model_copy(
        update={"tracking": params.tracking.model_copy(update={"log_model": False})}
    )
    train(params)
    doc = evaluate(params)
    pairs = pd.read_csv(tmp_path / "reports" / "confusion.csv")
    test_ids = cache.split_ids(1, "test")
    assert sorted(pairs["clip_id"]) == test_ids and doc["n_test"] == len(test_ids)
    trained = load_trained_model(tmp_path / "models" / "model.pt")
    i = trained.card.input
    assert (i.window_s, i.hop_s, i.max_clip_s) == (1.0, 0.5, 10.0)
    assert i.aggregate == "mean of window probabilities"
    card = (tmp_path / "reports" / "MODEL_CARD.md").read_text()
    assert "as 1 s windows every 0.5 s; a clip's score is the mean of window probabilities" in card
    settings = input_settings(trained)
    assert settings.cache.hop_s == 0.5
    faces = face_loader(root / "faces")
    p = predict(trained.model, make_loader(cache, 1, "test", 4, train=False))
    predicted = dict(zip(pairs["clip_id"], pairs["predicted"]))
    for k, clip_id in enumerate(p.clip_ids):
        wav = WavReader(root / "interim" / "audio" / f"{clip_id}.wav")
        duration = len(wav.segment(0.0, 100.0)[1]) / wav.sample_rate
        starts = [float(s) for s in window_starts(duration, 1.0, settings.cache.hop_s)]
        assert len(starts) == cache.n_windows(clip_id)
        arrays = _window_arrays(starts, dict(faces(clip_id)), wav, settings)
        ours = mean_probabilities(class_probabilities(trained.model, arrays, settings.stats))
        np.testing.assert_allclose(p.probs[k], ours, atol=1e-5)
        assert trained.classes[int(np.argmax(ours))] == predicted[clip_id]

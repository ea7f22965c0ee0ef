"""`aver predict --card` in the `demo_pipeline` repo (the whole pipeline ran there): the card of
the model file and of the registered champion, the pipeline's MODEL_CARD.md files."""

from __future__ import annotations

import json

import pytest

from tests.support.pipeline import aver_predict


@pytest.mark.e2e
def test_card_of_the_model_file_and_the_champion(demo_pipeline):
    repo, env = demo_pipeline
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    summary = json.loads((repo / "models" / "train_summary.json").read_text())
    full = (repo / "reports" / "MODEL_CARD.md").read_text()
    assert f"UAR {metrics['uar']:.3f}, bootstrap over test clips" in full
    for fold, m in metrics["per_fold"].items():
        assert f"| {fold} | {m['uar']:.3f} | {m['accuracy']:.3f} |" in full
    assert "`demo`, synthetic (generated)" in full and "synthetic demo data only" in full

    # the model file: its own card and validation record; no test numbers in it
    proc = aver_predict(repo, env, "--card")
    assert proc.returncode == 0, proc.stderr
    own = proc.stdout
    assert own.startswith("# Model card: ") and "(model file)" in own.splitlines()[0]
    fold = str(summary["model_fold"])
    assert f"| {fold} | {summary['model_seed']} | {summary['folds'][fold]['val_uar']:.3f} |" in own
    assert "Not evaluated yet" in own and "## Uses to avoid" in own

    # the registered champion: the card evaluate published (description and artifact)
    proc = aver_predict(repo, env, "--model", "models:/aver-demo@champion", "--card")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == full


@pytest.mark.e2e
def test_predict_without_a_video_or_card_is_a_usage_error(demo_pipeline):
    repo, env = demo_pipeline
    proc = aver_predict(repo, env)
    assert proc.returncode == 2 and "a video is required (or --card" in proc.stderr

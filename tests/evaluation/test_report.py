"""Report documents from predictions: hand-checked numbers, DVC-friendly tables."""

from __future__ import annotations

import numpy as np
import pytest

from aver.evaluation.report import (
    confusion_pairs,
    fold_metrics,
    metrics_document,
    per_class_table,
)
from aver.training.metrics import confusion_matrix

CLASSES = ["neutral", "happy", "sad"]


def test_fold_metrics_hand_computed():
    m = fold_metrics(np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 1, 0, 0]), CLASSES)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["per_class_recall"] == {"neutral": 0.5, "happy": pytest.approx(2 / 3), "sad": 0.0}
    assert m["uar"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    # F1: neutral 2*1/(3+2)=0.4, happy 2*2/(3+3)=2/3, sad 0
    assert m["macro_f1"] == pytest.approx((0.4 + 2 / 3 + 0) / 3)
    assert m["n_test"] == 6


def test_metrics_document_means_folds_and_pools_recall():
    f0 = fold_metrics(np.array([0, 1, 2]), np.array([0, 1, 2]), CLASSES)  # all right
    f1 = fold_metrics(np.array([0, 1, 2]), np.array([1, 1, 1]), CLASSES)  # only happy right
    pooled_t, pooled_p = np.array([0, 1, 2, 0, 1, 2]), np.array([0, 1, 2, 1, 1, 1])
    doc = metrics_document(
        {0: f0, 1: f1},
        pooled_t,
        pooled_p,
        CLASSES,
        dataset="d",
        protocol="random",
        leaky=True,
        model_fold=0,
    )
    assert doc["accuracy"] == pytest.approx((1 + 1 / 3) / 2)
    assert doc["uar_std"] == pytest.approx(np.std([1, 1 / 3], ddof=1))
    assert doc["per_class_recall"] == {"neutral": 0.5, "happy": 1.0, "sad": 0.5}
    assert doc["leaky"] is True and "leaky" in doc["warning"]
    assert doc["folds_evaluated"] == [0, 1] and doc["fold"] == 0 and doc["n_test"] == 6
    single = metrics_document(
        {2: f1},
        np.array([0, 1, 2]),
        np.array([1, 1, 1]),
        CLASSES,
        dataset="d",
        protocol="speaker_kfold",
        leaky=False,
        model_fold=2,
    )
    assert single["uar"] == pytest.approx(1 / 3) and single["uar_std"] == 0.0
    assert "warning" not in single


def test_confusion_pairs_and_per_class_table():
    t, p = np.array([0, 2, 2]), np.array([0, 2, 1])
    pairs = confusion_pairs(t, p, CLASSES, ["a", "b", "c"])
    assert list(pairs.columns) == ["clip_id", "actual", "predicted"]
    assert pairs.values.tolist() == [
        ["a", "neutral", "neutral"],
        ["b", "sad", "sad"],
        ["c", "sad", "happy"],
    ]
    table = per_class_table(confusion_matrix(t, p, 3), CLASSES)
    assert table["support"].tolist() == [1, 0, 2]
    assert table.loc[2, "recall"] == 0.5 and np.isnan(table.loc[1, "recall"])  # no support

"""Metrics against hand-computed values (and scikit-learn as a second opinion)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from aver.training.metrics import (
    accuracy,
    aggregate_folds,
    class_report,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    per_class_recall,
    uar,
)

# 4 classes; class 3 never occurs. Rows = actual, columns = predicted:
# [[2,1,0,0],[0,1,1,0],[0,0,1,0],[0,0,0,0]]
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def test_confusion_matrix_rows_are_actual():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_hand_computed_values():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 4)
    assert accuracy(cm) == pytest.approx(4 / 6)
    rec = per_class_recall(cm)
    assert rec[:3].tolist() == pytest.approx([2 / 3, 1 / 2, 1.0]) and math.isnan(rec[3])
    assert uar(cm) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)  # absent class 3 not averaged
    # F1: class0 2*2/(2+3), class1 2*1/(2+2), class2 2*1/(1+2)
    assert macro_f1(cm) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    m = classification_metrics(t, p, 5)
    assert m["accuracy"] == pytest.approx(float((t == p).mean()))
    assert m["uar"] == pytest.approx(balanced_accuracy_score(t, p))
    assert m["macro_f1"] == pytest.approx(f1_score(t, p, average="macro"))


def test_class_report_and_bad_labels():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 4)
    rows = class_report(cm, ["a", "b", "c", "d"])
    assert rows[0] == {
        "class": "a",
        "support": 3,
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
    }
    assert rows[3]["recall"] is None and rows[3]["support"] == 0
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)


def test_aggregate_folds_mean_and_sample_std():
    agg = aggregate_folds([{"uar": 0.5, "acc": 1.0}, {"uar": 0.7, "acc": 1.0}])
    assert agg["uar"]["mean"] == pytest.approx(0.6)
    assert agg["uar"]["std"] == pytest.approx(math.sqrt(0.02))
    assert agg["acc"]["std"] == 0.0 and agg["uar"]["n"] == 2
    assert aggregate_folds([{"uar": 0.4}])["uar"] == {"mean": 0.4, "std": 0.0, "n": 1}

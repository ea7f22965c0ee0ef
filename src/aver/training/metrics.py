"""Classification metrics as pure functions of integer labels and predictions.

WAR (accuracy) weighs every clip equally; UAR (unweighted average recall) is the mean of the
per-class recalls over the classes present in `y_true`; macro-F1 averages per-class F1 over the
classes present in `y_true` or `y_pred` (scikit-learn's convention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

# Integer labels: a list or a numpy array.
Labels = Sequence[int] | npt.NDArray[np.integer]


def confusion_matrix(y_true: Labels, y_pred: Labels, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are the actual class, columns the predicted one."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(cm: np.ndarray) -> float:
    """Weighted accuracy (WAR): correct / total."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class with no actual samples."""
    support = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def per_class_precision(cm: np.ndarray) -> np.ndarray:
    """Precision of each class; NaN for a class that was never predicted."""
    predicted = cm.sum(axis=0).astype(np.float64)
    return np.where(predicted > 0, np.diag(cm) / np.maximum(predicted, 1), np.nan)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 of each class; 0 where precision or recall is undefined but the class occurs."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def uar(cm: np.ndarray) -> float:
    """Unweighted average recall over the classes present in y_true."""
    rec = per_class_recall(cm)
    return float(np.nanmean(rec)) if np.any(~np.isnan(rec)) else float("nan")


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over the classes that occur in y_true or y_pred."""
    f1 = per_class_f1(cm)
    return float(np.nanmean(f1)) if np.any(~np.isnan(f1)) else float("nan")


def classification_metrics(y_true: Labels, y_pred: Labels, n_classes: int) -> dict[str, float]:
    """accuracy, uar and macro_f1 in one dict (the scalars logged each epoch)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return {"accuracy": accuracy(cm), "uar": uar(cm), "macro_f1": macro_f1(cm)}


def class_report(cm: np.ndarray, classes: Sequence[str]) -> list[dict[str, object]]:
    """One row per class: support, precision, recall, f1 (None where undefined)."""
    rows = []
    for i, (name, p, r, f) in enumerate(
        zip(classes, per_class_precision(cm), per_class_recall(cm), per_class_f1(cm))
    ):
        rows.append(
            {
                "class": name,
                "support": int(cm[i].sum()),
                "precision": _none_if_nan(p),
                "recall": _none_if_nan(r),
                "f1": _none_if_nan(f),
            }
        )
    return rows


def aggregate_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one fold) of each shared metric."""
    if not per_fold:
        return {}
    keys = [k for k in per_fold[0] if all(k in m for m in per_fold)]
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.array([float(m[key]) for m in per_fold], dtype=np.float64)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out[key] = {"mean": float(values.mean()), "std": std, "n": int(values.size)}
    return out


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(float(x)) else float(x)

"""Test-set reports: metrics.json content, confusion pairs for DVC, per-class table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aver.training.metrics import (
    aggregate_folds,
    class_report,
    classification_metrics,
    confusion_matrix,
    per_class_recall,
)


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """accuracy, uar, macro_f1, per-class recall (None where a class is absent), n_test."""
    m = classification_metrics(y_true, y_pred, len(classes))
    rec = per_class_recall(confusion_matrix(y_true, y_pred, len(classes)))
    return {
        **m,
        "per_class_recall": {c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, rec)},
        "n_test": len(y_true),
    }


def metrics_document(
    per_fold: Mapping[int, Mapping[str, Any]],
    pooled_true: np.ndarray,
    pooled_pred: np.ndarray,
    classes: Sequence[str],
    *,
    dataset: str,
    protocol: str,
    leaky: bool,
    model_fold: int,
    intervals: Mapping[str, Mapping[str, Any]] | None = None,
    per_run: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """reports/metrics.json: mean over runs at the top (the single run's values for one run),
    std across runs, 95% intervals (bootstrap over test clips as `<metric>_ci95_low/high`, and
    `intervals` with the across-runs Student t one too), per-class recall of the pooled test
    predictions, each fold's values and, with `per_run` (one entry per (fold, seed) run, keys
    fold, seed, accuracy, uar, macro_f1, ...), each run's. Without `per_run`, the runs are the
    folds of `per_fold`; with it, `per_fold` holds one run per fold (the first seed's)."""
    rows = list(per_run) if per_run is not None else list(per_fold.values())
    scalars = [{k: v[k] for k in ("accuracy", "uar", "macro_f1")} for v in rows]
    agg = aggregate_folds(scalars)
    pooled = fold_metrics(pooled_true, pooled_pred, classes)
    doc: dict[str, Any] = {
        "dataset": dataset,
        "protocol": protocol,
        "leaky": bool(leaky),
        "fold": model_fold,
        "folds_evaluated": sorted(int(k) for k in per_fold),
        "n_runs": len(rows),
        "accuracy": agg["accuracy"]["mean"],
        "uar": agg["uar"]["mean"],
        "macro_f1": agg["macro_f1"]["mean"],
        "accuracy_std": agg["accuracy"]["std"],
        "uar_std": agg["uar"]["std"],
        "macro_f1_std": agg["macro_f1"]["std"],
        **{
            f"{k}_ci95_{end}": v["bootstrap"][i]
            for k, v in (intervals or {}).items()
            for i, end in enumerate(("low", "high"))
        },
        "intervals": {k: dict(v) for k, v in (intervals or {}).items()},
        "per_class_recall": pooled["per_class_recall"],
        "n_test": pooled["n_test"],
        "per_fold": {str(k): dict(v) for k, v in sorted(per_fold.items())},
    }
    if per_run is not None:
        doc["seeds"] = sorted({int(r["seed"]) for r in per_run if r.get("seed") is not None})
        doc["per_run"] = [dict(r) for r in per_run]
    if leaky:
        doc["warning"] = (
            "random split: speakers are shared between train and test (leaky protocol); "
            "not comparable with speaker-independent results"
        )
    return doc


def confusion_pairs(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], clip_ids: Sequence[str]
) -> pd.DataFrame:
    """One row per test clip (clip_id, actual, predicted): DVC's confusion plot template."""
    return pd.DataFrame(
        {
            "clip_id": list(clip_ids),
            "actual": [classes[int(i)] for i in y_true],
            "predicted": [classes[int(i)] for i in y_pred],
        }
    )


def per_class_table(cm: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """class, support, precision, recall, f1 (empty cells where undefined)."""
    return pd.DataFrame(class_report(cm, classes))

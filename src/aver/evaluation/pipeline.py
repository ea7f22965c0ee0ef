"""The `evaluate` stage: each trained fold's best model on its test split -> reports/.

Reads `models/train_summary.json` and `models/folds/fold-K.pt` (model.pt for the model fold),
writes (atomically) under `evaluate.out`:
- `metrics.json` (DVC metrics): accuracy, uar, macro_f1 (mean over the evaluated folds) and
  their std, 95% intervals (`<metric>_ci95_low/high`: bootstrap over test clips; `intervals`:
  also across folds, aver.evaluation.intervals), per-class recall, protocol, leaky flag,
  fold(s), per-fold values
- `confusion.csv` (clip_id,actual,predicted; DVC confusion template) + `confusion.png`
- `per_class.csv` (class, support, precision, recall, f1), `per_class_recall.png`
and logs them to the training's MLflow runs (ids from train_summary.json): test metrics on each
fold's child run, means and the files on the parent run, `test_uar` on the registered version.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aver.config import Params, TrackingConfig
from aver.errors import DataError
from aver.evaluation import plots
from aver.evaluation.intervals import metric_intervals
from aver.evaluation.report import confusion_pairs, fold_metrics, metrics_document, per_class_table
from aver.features.cache import FeatureCache
from aver.features.loader import make_loader
from aver.io.atomic import write_csv, write_json
from aver.training.checkpoints import load_trained_model
from aver.training.loop import predict, resolve_device
from aver.training.metrics import confusion_matrix

log = logging.getLogger(__name__)


def read_summary(models_dir: Path) -> dict[str, Any]:
    path = models_dir / "train_summary.json"
    if not path.exists():
        raise DataError(
            "training summary not found",
            path=path,
            fix="run the train stage first (dvc repro train)",
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataError(f"unreadable ({err})", path=path, fix="rerun the train stage") from None


def run(params: Params) -> dict[str, Any]:
    """Evaluate the trained fold(s) on their test speakers; write reports/ and log to MLflow."""
    models_dir, out = Path(params.train.out), Path(params.evaluate.out)
    summary = read_summary(models_dir)
    cache = FeatureCache(params.cache.out)
    device = resolve_device(params.train.device)
    model_fold = int(summary["model_fold"])
    per_fold: dict[int, dict[str, Any]] = {}
    trues, preds, ids = [], [], []
    classes: list[str] = list(cache.classes)
    for fold in [int(f) for f in summary["folds_trained"]]:
        path = models_dir / "folds" / f"fold-{fold}.pt"
        if not path.exists() and fold == model_fold:
            path = models_dir / "model.pt"
        trained = load_trained_model(path, device=device)
        if trained.classes != classes:
            raise DataError(
                f"model classes {trained.classes} differ from the cache's {classes}",
                path=path,
                fix="retrain on this cache (dvc repro train)",
            )
        fp = trained.info.get("data_fingerprint")
        if fp and fp != summary.get("data", {}).get("data_fingerprint"):
            log.warning("%s was trained on other data than train_summary.json describes", path)
        batch = params.evaluate.batch_size or params.train.batch_size
        loader = make_loader(
            cache, fold, "test", batch, train=False, num_workers=params.train.num_workers
        )
        p = predict(trained.model, loader, device, desc=f"test fold {fold}", progress=True)
        per_fold[fold] = fold_metrics(p.y_true, p.y_pred, classes)
        trues.append(p.y_true)
        preds.append(p.y_pred)
        ids.extend(p.clip_ids)
        log.info(
            "fold %d test: accuracy %.4f, UAR %.4f, macro-F1 %.4f (%d clips)",
            fold,
            per_fold[fold]["accuracy"],
            per_fold[fold]["uar"],
            per_fold[fold]["macro_f1"],
            per_fold[fold]["n_test"],
        )
    y_true, y_pred = np.concatenate(trues), np.concatenate(preds)
    intervals = metric_intervals(
        list(zip(trues, preds)),
        len(classes),
        n_boot=params.evaluate.bootstrap,
        seed=params.evaluate.seed,
    )
    doc = metrics_document(
        per_fold,
        y_true,
        y_pred,
        classes,
        dataset=summary["dataset"],
        protocol=cache.protocol,
        leaky=cache.leaky,
        model_fold=model_fold,
        intervals=intervals,
    )
    cm = confusion_matrix(y_true, y_pred, len(classes))
    write_json(out / "metrics.json", doc)
    write_csv(out / "confusion.csv", confusion_pairs(y_true, y_pred, classes, ids))
    write_csv(out / "per_class.csv", per_class_table(cm, classes))
    leak = " (LEAKY random split)" if cache.leaky else ""
    plots.confusion_png(
        cm, classes, out / "confusion.png", title=f"test, folds {doc['folds_evaluated']}{leak}"
    )
    plots.recall_bars_png(
        doc["per_class_recall"],
        out / "per_class_recall.png",
        title=f"test recall, UAR {doc['uar']:.3f}{leak}",
    )
    _log_to_mlflow(params.tracking, summary, doc, out)
    return doc


def _log_to_mlflow(
    cfg: TrackingConfig, summary: dict[str, Any], doc: dict[str, Any], out: Path
) -> None:
    """Attach test results to the training's runs; warn (do not fail) if they are not found."""
    import time

    from aver.redact import redact_text, redact_uri
    from aver.tracking.runs import absolute_uri, connect, tracking_uri

    ml = summary.get("mlflow", {})
    parent = ml.get("parent_run_id")
    if not parent:
        log.warning("no MLflow run recorded in train_summary.json; skipping MLflow logging")
        return
    uri = connect(absolute_uri(tracking_uri(cfg)))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    now = int(time.time() * 1000)
    try:
        client.get_run(parent)
        for fold, m in doc["per_fold"].items():
            run_id = ml.get("fold_run_ids", {}).get(str(fold))
            if run_id:
                client.log_batch(
                    run_id,
                    metrics=[
                        Metric(f"test_{k}", float(m[k]), now, 0)
                        for k in ("accuracy", "uar", "macro_f1")
                    ],
                )
        client.log_batch(
            parent,
            metrics=[
                Metric(f"test_{k}", float(doc[k]), now, 0)
                for k in (
                    *("accuracy", "uar", "macro_f1", "accuracy_std", "uar_std", "macro_f1_std"),
                    *(f"{m}_ci95_{end}" for m in ("accuracy", "uar") for end in ("low", "high")),
                )
            ],
        )
        for name in (
            "metrics.json",
            "confusion.csv",
            "confusion.png",
            "per_class.csv",
            "per_class_recall.png",
        ):
            client.log_artifact(parent, str(out / name), "evaluation")
        if ml.get("registered_model") and ml.get("version"):
            client.set_model_version_tag(
                ml["registered_model"], str(ml["version"]), "test_uar", f"{doc['uar']:.6f}"
            )
    except MlflowException as err:
        log.warning(
            "could not log evaluation to MLflow run %s at %s: %s",
            parent,
            redact_uri(uri),
            redact_text(str(err))[:300],
        )

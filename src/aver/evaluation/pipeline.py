"""The `evaluate` stage: each trained (fold, seed) run's best model on its test split -> reports/.

A test clip is scored as `aver predict` scores a video: every cached window of it
(`aver.windows`), its probabilities the mean of the window probabilities
(`aver.inference.predict`); each clip counts once in every metric.

Reads `models/train_summary.json` and the model file of each run it lists (`runs`: every fold x
seed of train.seeds; older summaries: `models/folds/fold-K.pt` per fold, model.pt for the model
fold), writes (atomically) under `evaluate.out`:
- `metrics.json` (DVC metrics): accuracy, uar, macro_f1 (mean over the evaluated runs) and
  their std, 95% intervals (`<metric>_ci95_low/high`: bootstrap over test clips, resampling each
  run's clips; `intervals.<metric>.runs`: Student t across the (fold, seed) runs, from two runs
  on; aver.evaluation.intervals), per-class recall, protocol, leaky flag, fold(s), `per_fold`
  (the first seed's run of each fold), `per_run` (every run, with its fold and seed); each
  fold's and run's entry names its `test_speakers`
- `confusion.csv` (clip_id,actual,predicted; DVC confusion template) + `confusion.png`
- `per_class.csv` (class, support, precision, recall, f1), `per_class_recall.png`
  (these three, and the pooled per-class recall, from the first seed's runs: each test clip once
  per fold)
and logs them to the training's MLflow runs (ids from train_summary.json): test metrics on each
run's child run, means, std and intervals and the files on the parent run, `test_uar` on the
registered version.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from aver.config import Params, TrackingConfig
from aver.errors import DataError
from aver.evaluation import plots
from aver.evaluation.intervals import metric_intervals
from aver.evaluation.report import confusion_pairs, fold_metrics, metrics_document, per_class_table
from aver.features.cache import FeatureCache
from aver.features.loader import make_loader
from aver.features.splits import fold_speakers
from aver.inference import Predictions, load_trained_model, predict, resolve_device
from aver.io.atomic import write_csv, write_json, write_text
from aver.resolution import resolve
from aver.tracking import card_doc
from aver.training.checkpoints import read_model_file
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


def trained_runs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """(fold, seed, key, path relative to train.out, run_id) of each run train_summary.json lists;
    a summary from before train.seeds: one run per trained fold (seed None)."""
    if "runs" in summary:
        return [
            {
                "fold": int(r["fold"]),
                "seed": int(r["seed"]),
                "key": str(r.get("key", r["fold"])),
                "path": r["path"],
                "run_id": r.get("run_id"),
            }
            for r in summary["runs"]
        ]
    ids = summary.get("mlflow", {}).get("fold_run_ids", {})
    return [
        {"fold": f, "seed": None, "key": str(f), "path": f"folds/fold-{f}.pt", "run_id": None}
        | ({"run_id": ids[str(f)]} if str(f) in ids else {})
        for f in (int(f) for f in summary["folds_trained"])
    ]


def run(params: Params) -> dict[str, Any]:
    """Evaluate the trained runs on their test speakers; write reports/ and log to MLflow."""
    params = resolve(params).params  # the train settings (batch size, device) train ran with
    models_dir, out = Path(params.train.out), Path(params.evaluate.out)
    summary = read_summary(models_dir)
    cache = FeatureCache(params.cache.out)
    device = resolve_device(params.train.device)
    model_fold = int(summary["model_fold"])
    model_seed = summary.get("model_seed")
    per_fold: dict[int, dict[str, Any]] = {}
    per_run: list[dict[str, Any]] = []
    runs_pred: list[tuple[np.ndarray, np.ndarray]] = []
    trues, preds, ids = [], [], []
    classes: list[str] = list(cache.classes)
    for spec in trained_runs(summary):
        fold, seed, key = spec["fold"], spec["seed"], spec["key"]
        path = models_dir / spec["path"]
        if not path.exists() and (fold, seed) == (model_fold, model_seed):
            path = models_dir / "model.pt"
        p = _predict_test(params, cache, summary, path, fold, key, device)
        m = fold_metrics(p.y_true, p.y_pred, classes)
        m["test_speakers"] = fold_speakers(cache.index, fold)
        per_run.append({"fold": fold, "seed": seed, "run_id": spec["run_id"], **m})
        runs_pred.append((p.y_true, p.y_pred))
        if fold not in per_fold:  # the first seed's run of the fold
            per_fold[fold] = m
            trues.append(p.y_true)
            preds.append(p.y_pred)
            ids.extend(p.clip_ids)
        log.info(
            "fold %s test: accuracy %.4f, UAR %.4f, macro-F1 %.4f (%d clips)",
            key,
            m["accuracy"],
            m["uar"],
            m["macro_f1"],
            m["n_test"],
        )
    y_true, y_pred = np.concatenate(trues), np.concatenate(preds)
    intervals = metric_intervals(
        runs_pred,
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
        per_run=per_run,
    )
    _write_reports(out, doc, y_true, y_pred, classes, ids, leaky=cache.leaky)
    _log_to_mlflow(params.tracking, summary, doc, out)
    _write_card(params.tracking, summary, doc, models_dir, out)
    return doc


def _predict_test(
    params: Params,
    cache: FeatureCache,
    summary: dict[str, Any],
    path: Path,
    fold: int,
    key: str,
    device: Any,
) -> Predictions:
    """One trained run's predictions on its fold's test clips (its classes checked)."""
    trained = load_trained_model(path, device=device)
    if trained.classes != list(cache.classes):
        raise DataError(
            f"model classes {trained.classes} differ from the cache's {list(cache.classes)}",
            path=path,
            fix="retrain on this cache (dvc repro train)",
        )
    fp = trained.card.run.get("data_fingerprint")
    if fp and fp != summary.get("data", {}).get("data_fingerprint"):
        log.warning("%s was trained on other data than train_summary.json describes", path)
    batch = params.evaluate.batch_size or params.train.batch_size
    loader = make_loader(
        cache, fold, "test", batch, train=False, num_workers=params.train.num_workers
    )
    return predict(trained.model, loader, device, desc=f"test fold {key}", progress=True)


def _write_reports(
    out: Path,
    doc: dict[str, Any],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: list[str],
    ids: list[str],
    *,
    leaky: bool,
) -> None:
    """metrics.json, confusion.csv, per_class.csv and the confusion and recall plots."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    write_json(out / "metrics.json", doc)
    write_csv(out / "confusion.csv", confusion_pairs(y_true, y_pred, classes, ids))
    write_csv(out / "per_class.csv", per_class_table(cm, classes))
    leak = " (LEAKY random split)" if leaky else ""
    plots.confusion_png(
        cm, classes, out / "confusion.png", title=f"test, folds {doc['folds_evaluated']}{leak}"
    )
    plots.recall_bars_png(
        doc["per_class_recall"],
        out / "per_class_recall.png",
        title=f"test recall, UAR {doc['uar']:.3f}{leak}",
    )


def _test_metrics(doc: dict[str, Any]) -> dict[str, float]:
    """The parent run's test metrics: means, stds, pooled and per-run 95% intervals."""
    return (
        {
            f"test_{k}": float(doc[k])
            for k in (
                *("accuracy", "uar", "macro_f1", "accuracy_std", "uar_std", "macro_f1_std"),
                *(f"{m}_ci95_{end}" for m in ("accuracy", "uar") for end in ("low", "high")),
            )
        }
        | {"test_n_runs": float(doc["n_runs"])}
        | {  # Student t across the (fold, seed) runs, where there are two or more
            f"test_{m}_runs_ci95_{end}": float(v["runs"][i])
            for m, v in doc["intervals"].items()
            if v.get("runs")
            for i, end in enumerate(("low", "high"))
        }
    )


def _write_card(
    cfg: TrackingConfig, summary: dict[str, Any], doc: dict[str, Any], models_dir: Path, out: Path
) -> None:
    """reports/MODEL_CARD.md (validation and test metrics): the training's parent run's
    MODEL_CARD.md and the registered version's description, replacing the train stage's."""
    from aver.redact import redact_text
    from aver.tracking.runs import MlflowException, absolute_uri, connect, tracking_uri

    ml = summary.get("mlflow", {})
    inputs = card_doc.CardInputs(
        card=read_model_file(models_dir / "model.pt").card,
        name=ml.get("registered_model"),
        version=ml.get("version"),
        val_runs=card_doc.val_runs_of(summary),
        test=doc,
    )
    text = card_doc.render(inputs)
    if not ml.get("parent_run_id"):
        write_text(out / card_doc.FILE, text)
        return
    uri = connect(absolute_uri(tracking_uri(cfg)))
    try:
        card_doc.publish(
            text,
            out / card_doc.FILE,
            run_id=ml["parent_run_id"],
            name=inputs.name,
            version=inputs.version,
            uri=uri,
        )
    except MlflowException as err:
        log.warning("could not log the model card to MLflow: %s", redact_text(str(err))[:300])


def _log_to_mlflow(
    cfg: TrackingConfig, summary: dict[str, Any], doc: dict[str, Any], out: Path
) -> None:
    """Attach test results to the training's runs; warn (do not fail) if they are not found."""
    from aver.redact import redact_text, redact_uri
    from aver.tracking.runs import (
        MlflowException,
        RunRef,
        absolute_uri,
        connect,
        set_model_version_tag,
        tracking_uri,
    )

    ml = summary.get("mlflow", {})
    parent = ml.get("parent_run_id")
    if not parent:
        log.warning("no MLflow run recorded in train_summary.json; skipping MLflow logging")
        return
    uri = connect(absolute_uri(tracking_uri(cfg)))
    run = RunRef(parent, uri)
    try:
        _ = run.experiment_id  # MlflowException when the run is gone
        for m in doc["per_run"]:
            run_id = m.get("run_id")
            if run_id:
                RunRef(run_id, uri).log_metrics(
                    {f"test_{k}": float(m[k]) for k in ("accuracy", "uar", "macro_f1")},
                    finite_only=False,
                )
        run.log_metrics(_test_metrics(doc), finite_only=False)
        for name in (
            "metrics.json",
            "confusion.csv",
            "confusion.png",
            "per_class.csv",
            "per_class_recall.png",
        ):
            run.log_artifact(out / name, "evaluation")
        if ml.get("registered_model") and ml.get("version"):
            set_model_version_tag(
                ml["registered_model"], str(ml["version"]), "test_uar", f"{doc['uar']:.6f}", uri
            )
    except MlflowException as err:
        log.warning(
            "could not log evaluation to MLflow run %s at %s: %s",
            parent,
            redact_uri(uri),
            redact_text(str(err))[:300],
        )

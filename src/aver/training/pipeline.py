"""The `train` stage: preset + tuned params -> one MLflow parent run, a child run per fold x seed.

Every fold in train.folds is trained once per seed of `train.seeds` (null: `[train.seed]`), each
(fold, seed) in its own MLflow child run tagged `fold` and `seed`. A run's key is `K` with one
seed (the file names of a single-seed run are unchanged) and `K-seed-S` with several.

Outputs under `train.out` (models/):
- `model.pt`: best weights of the model fold (train.model_fold, default the first trained fold)
  trained with the FIRST seed (a fixed choice, not a pick on any score) + its model card
  (aver.model_card: what inference needs; weights_only-loadable); registered in MLflow
- `folds/fold-<key>.pt`: the same for every (fold, seed) run (the evaluate stage tests each)
- `checkpoints/fold-<key>/last.pt`: resume state; `checkpoints/mlflow.json`: run ids to reopen
  (train.executor ray: Ray Train's run `checkpoints/ray/fold-K`, `checkpoints/ray/seed-S/fold-K`
  with several seeds, holding the same last.pt)
- `train_summary.json`: `runs` (fold, seed, model file, best validation metrics, MLflow id of
  every run), `folds` (the first seed's run of each fold), `val` mean/std over all runs
- `plots/curves.csv` + `curves.png` (model run; PNG shows all runs), `plots/fold-<key>/...`
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aver.config import Params, flatten
from aver.errors import ConfigError
from aver.features.cache import FeatureCache
from aver.features.splits import fold_speakers
from aver.inference import probabilities
from aver.io.atomic import write_csv, write_json
from aver.model_card import card_from_params
from aver.redact import redact_obj, redact_uri
from aver.resolution import resolve
from aver.tracking import card_doc, registry, runs
from aver.training import checkpoints, ddp, plots
from aver.training.folds import (
    FoldSetup,
    check_modalities,
    prepare_fold,
    resolve_folds,
    with_seed,
)
from aver.training.loop import (
    FitResult,
    config_fingerprint,
    fit,
    predict,
    resolve_device,
)
from aver.training.metrics import (
    aggregate_folds,
    class_report,
    classification_metrics,
    confusion_matrix,
)
from aver.workspace import git_state

log = logging.getLogger(__name__)
SUMMARY = "train_summary.json"
META_KEYS = (
    "dataset",
    "classes",
    "protocol",
    "leaky",
    "n_folds",
    "window_s",
    "crop",
    "audio",
    "video",
    "encoders",
    "config",
)


@dataclass
class FoldOutcome:
    fold: int
    seed: int
    key: str  # "K" (one seed) or "K-seed-S"; names the run's files and MLflow run
    fit: FitResult
    val: dict[str, float]
    run_id: str
    model_file: Path
    example: dict[str, np.ndarray] = field(default_factory=dict)
    example_probs: np.ndarray | None = None


def run_key(fold: int, seed: int, multi_seed: bool) -> str:
    """`K` when each fold is trained with one seed (the historical names), else `K-seed-S`."""
    return f"{fold}-seed-{seed}" if multi_seed else str(fold)


@dataclass
class TrainRun:
    """What every (fold, seed) run of one train stage shares."""

    params: Params  # resolved: preset and tuned values applied
    applied: dict[str, Any]  # the overrides applied (aver.resolution.resolve)
    cache: FeatureCache
    folds: list[int]
    seeds: list[int]
    model_fold: int
    fp: dict[str, str]  # data fingerprint (+ dvc md5)
    commit: str
    tags: dict[str, str]  # of the parent run, and (with fold, seed) of each child
    config_doc: dict[str, Any]  # the resolved config as logged (config/resolved_params.yaml)
    session_path: Path  # MLflow run ids of this configuration, to reopen after a crash
    session: dict[str, Any] = field(default_factory=dict)
    exp_id: str = ""
    parent_id: str = ""

    @property
    def out(self) -> Path:
        return Path(self.params.train.out)

    @property
    def dataset(self) -> str:
        return self.params.data.dataset

    def save_session(self) -> None:
        write_json(self.session_path, self.session)


def run(params: Params) -> dict[str, Any]:
    """Train the configured folds; write models/, log to MLflow, register the model."""
    tr = _plan(params)
    cfg = tr.params.train
    store = redact_uri(runs.tracking_uri(tr.params.tracking))  # as configured, before setup
    tr.exp_id = runs.setup(tr.params.tracking, tr.dataset)
    tr.session = _read_session(tr.session_path, config_fingerprint(cfg, tr.fp["data_fingerprint"]))
    keep = [tr.session.get("parent"), *tr.session.get("folds", {}).values()]
    runs.close_stale(tr.exp_id, "train", keep=keep)
    log.info(
        "training %s folds %s x seeds %s (model: fold %d, seed %d) on %s; MLflow %s, experiment %s",
        cfg.model.name,
        tr.folds,
        tr.seeds,
        tr.model_fold,
        tr.seeds[0],
        f"{cfg.workers} Ray Train workers ({'GPU' if cfg.use_gpu else 'CPU'})"
        if cfg.executor == "ray"
        else resolve_device(cfg.device),
        store,
        runs.experiment_name(tr.params.tracking, tr.dataset),
    )
    outcomes: dict[tuple[int, int], FoldOutcome] = {}
    with runs.start(
        tr.exp_id,
        run_name=f"train-{cfg.model.name}",
        run_id=tr.session.get("parent"),
        tags=tr.tags,
    ) as parent:
        tr.parent_id = tr.session["parent"] = parent.info.run_id
        tr.save_session()
        runs.log_params(flatten(tr.params))
        runs.log_yaml(tr.config_doc, "config/resolved_params.yaml")
        multi = len(tr.seeds) > 1
        for fold in tr.folds:
            for seed in tr.seeds:
                outcomes[(fold, seed)] = _train_fold(
                    with_seed(tr.params, seed),
                    tr,
                    fold,
                    key=run_key(fold, seed, multi),
                    keep_example=(fold, seed) == (tr.model_fold, tr.seeds[0]),
                )
        summary = _summarise(tr, outcomes, store)
        write_json(tr.session_path, {**tr.session, "finished": True})
    log.info(
        "val UAR %s", ", ".join(f"fold {o.key}: {o.val['val_uar']:.4f}" for o in outcomes.values())
    )
    return summary


def _plan(params: Params) -> TrainRun:
    """Resolve params, check folds and scaling, gather the run-wide tags (nothing logged yet)."""
    res = resolve(params)
    resolved, applied = res.params, res.applied
    cfg = resolved.train
    cache = FeatureCache(resolved.cache.out)
    check_modalities(resolved, cache)  # a video model on an audio-only dataset: refused here
    folds = resolve_folds(cfg.folds, cache.n_folds)
    model_fold = folds[0] if cfg.model_fold is None else cfg.model_fold
    if model_fold not in folds:
        raise ConfigError(
            f"train.model_fold {model_fold} is not among train.folds {folds}",
            fix="add it to train.folds or leave train.model_fold null",
        )
    if cfg.executor == "ray":
        ddp.check_scaling(cfg)
    fp = runs.data_fingerprint(cache.path)
    commit, dirty = git_state(".")
    tags = {
        **runs.stage_tags("train"),
        "dataset": resolved.data.dataset,
        "protocol": cache.protocol,
        "leaky": str(cache.leaky),
        "git_commit": commit,
        "git_dirty": str(dirty),
        **fp,
        **runs.encoder_tags(cache.meta.get("encoders") or {}),
    }
    if cfg.preset not in (None, "none"):
        tags["preset"] = str(cfg.preset)
    config_doc = {
        "params": redact_obj(resolved.model_dump(mode="json")),
        "applied_overrides": applied,
    }
    return TrainRun(
        params=resolved,
        applied=applied,
        cache=cache,
        folds=folds,
        seeds=cfg.run_seeds(),
        model_fold=model_fold,
        fp=fp,
        commit=commit,
        tags=tags,
        config_doc=config_doc,
        session_path=Path(cfg.out) / "checkpoints" / "mlflow.json",
    )


def _summarise(
    tr: TrainRun, outcomes: dict[tuple[int, int], FoldOutcome], store: str
) -> dict[str, Any]:
    """Aggregate metrics, model.pt, curves, train_summary.json; log them to the parent run."""
    cfg, out, cache, seeds = tr.params.train, tr.out, tr.cache, tr.seeds
    agg = aggregate_folds([o.val for o in outcomes.values()])
    runs.log_metrics({f"{k}_mean": v["mean"] for k, v in agg.items()})
    runs.log_metrics({f"{k}_std": v["std"] for k, v in agg.items()})
    runs.log_metrics({"n_runs": len(outcomes)})
    chosen = outcomes[(tr.model_fold, seeds[0])]
    first = {f: outcomes[(f, seeds[0])] for f in tr.folds}
    _copy_model(chosen.model_file, out / "model.pt")
    _curves(tr, chosen, outcomes)
    summary: dict[str, Any] = {
        "dataset": tr.dataset,
        "protocol": cache.protocol,
        "leaky": cache.leaky,
        "n_folds": cache.n_folds,
        "folds_trained": tr.folds,
        "seeds": seeds,
        "model_fold": tr.model_fold,
        "model_seed": seeds[0],
        "model": cfg.model.name,
        "runs": [
            {
                "fold": o.fold,
                "seed": o.seed,
                "key": o.key,
                "path": o.model_file.relative_to(out).as_posix(),
                "test_speakers": fold_speakers(cache.index, o.fold),
                **_run_record(o),
            }
            for o in outcomes.values()
        ],
        "folds": {str(k): _run_record(o) for k, o in first.items()},  # first seed's runs
        "val": agg,  # mean/std over all (fold, seed) runs
        "data": tr.fp,
        "git_commit": tr.commit,
        "applied_overrides": tr.applied,
        "mlflow": {
            "tracking_uri": store,
            "experiment": runs.experiment_name(tr.params.tracking, tr.dataset),
            "experiment_id": tr.exp_id,
            "parent_run_id": tr.parent_id,
            "fold_run_ids": {str(k): o.run_id for k, o in first.items()},
            "run_ids": {o.key: o.run_id for o in outcomes.values()},
        },
    }
    summary["mlflow"].update(
        _log_and_register(tr.params, tr.dataset, chosen, out / "model.pt", cache)
    )
    _write_card(out, summary)
    write_json(out / SUMMARY, summary)
    runs.log_artifact(out / SUMMARY)
    return summary


def _write_card(out: Path, summary: dict[str, Any]) -> None:
    """models/MODEL_CARD.md (validation metrics; evaluate adds the test ones), logged to the
    parent run, and the registered version's description."""
    ml = summary["mlflow"]
    inputs = card_doc.CardInputs(
        card=checkpoints.read_model_file(out / "model.pt").card,
        name=ml.get("registered_model"),
        version=ml.get("version"),
        val_runs=card_doc.val_runs_of(summary),
    )
    card_doc.publish(
        card_doc.render(inputs),
        out / card_doc.FILE,
        run_id=ml["parent_run_id"],
        name=inputs.name,
        version=inputs.version,
    )


def _curves(tr: TrainRun, chosen: FoldOutcome, outcomes: dict[Any, FoldOutcome]) -> None:
    """plots/curves.csv (the model run) and curves.png (every run); logged under plots/."""
    plot_dir = tr.out / "plots"
    _write_curves(chosen.fit.history, plot_dir / "curves.csv")
    plots.curves_png(
        {f"fold {o.key}": o.fit.history for o in outcomes.values()},
        plot_dir / "curves.png",
        title=f"{tr.dataset} {tr.params.train.model.name}",
    )
    runs.log_artifact(plot_dir / "curves.png", "plots")
    runs.log_artifact(plot_dir / "curves.csv", "plots")


def _speaker_params(cache: FeatureCache, fold: int) -> dict[str, str]:
    """The fold run's `test_speakers` param: its test speakers, comma-separated (cut to MLflow's
    param length with a count of those left out; train_summary.json and the card hold all)."""
    ids = fold_speakers(cache.index, fold)
    text = ",".join(ids)
    if len(text) > runs.MAX_PARAM_CHARS:
        kept = text[: runs.MAX_PARAM_CHARS - 24].rsplit(",", 1)[0]
        text = f"{kept},... ({len(ids) - kept.count(',') - 1} more)"
    return {"test_speakers": text}


def _run_record(o: FoldOutcome) -> dict[str, Any]:
    return {
        **o.val,
        "run_id": o.run_id,
        "best_epoch": o.fit.best_epoch,  # the epoch whose weights were kept (train.select)
        "select": o.fit.select,
        "best_uar_epoch": o.fit.best_uar_epoch,
        "epochs_done": o.fit.epochs_done,
        "stopped_early": o.fit.stopped_early,
        "resumed_from_epoch": o.fit.start_epoch,
    }


def _train_fold(
    params: Params, tr: TrainRun, fold: int, *, key: str, keep_example: bool
) -> FoldOutcome:
    """One (fold, seed) run in its own child MLflow run; `params` carries the seed (with_seed)."""
    cfg = params.train
    setup = prepare_fold(params, tr.cache, fold)
    device = resolve_device(cfg.device)
    fold_runs = tr.session.setdefault("folds", {})
    with runs.start(
        tr.exp_id,
        run_name=f"fold-{key}",
        run_id=fold_runs.get(key),
        parent_run_id=tr.parent_id,
        tags={**tr.tags, "fold": str(fold), "seed": str(cfg.seed)},
    ) as child:
        run_id = fold_runs[key] = child.info.run_id
        tr.save_session()
        runs.log_params(
            {**flatten(params), "fold": fold, "seed": cfg.seed, **_speaker_params(tr.cache, fold)}
        )
        runs.log_yaml(tr.config_doc, "config/resolved_params.yaml")
        t0 = time.perf_counter()
        res = _fit(params, setup, tr, key=key, run_id=run_id, device=device)
        setup.model.load_state_dict(res.best_state)
        pred = predict(
            setup.model, setup.val_loader, device, amp=cfg.amp, label_smoothing=cfg.label_smoothing
        )
        m = classification_metrics(pred.y_true, pred.y_pred, len(setup.classes))
        val = {
            "val_accuracy": m["accuracy"],
            "val_uar": m["uar"],
            "val_macro_f1": m["macro_f1"],
            "val_loss": pred.loss,
        }
        runs.log_metrics({f"best_{k}": v for k, v in val.items() if np.isfinite(v)})
        runs.log_metrics(
            {
                "best_epoch": res.best_epoch,
                "best_uar_epoch": res.best_uar_epoch,
                "epochs_done": res.epochs_done,
                "train_time_s": time.perf_counter() - t0,
            }
        )
        cm = confusion_matrix(pred.y_true, pred.y_pred, len(setup.classes))
        _fold_reports(res, cm, setup.classes, tr.out / "plots", key=key, seed=cfg.seed)
        model_file = tr.out / "folds" / f"fold-{key}.pt"
        _save_fold_model(model_file, params, tr, setup, res, val, run_id)
        outcome = FoldOutcome(
            fold=fold,
            seed=cfg.seed,
            key=key,
            fit=res,
            val=val,
            run_id=run_id,
            model_file=model_file,
        )
        if keep_example:
            outcome.example, outcome.example_probs = _example(setup)
    return outcome


def _fit(
    params: Params, setup: FoldSetup, tr: TrainRun, *, key: str, run_id: str, device: Any
) -> FitResult:
    """fit here (or data-parallel on Ray), each epoch logged to the active (fold) run."""
    cfg, out = params.train, tr.out
    if cfg.executor == "ray":  # the same fit, data-parallel; rank 0 logs the epochs
        seed_dir = "" if key == str(setup.fold) else f"seed-{cfg.seed}"
        res = ddp.fit_on_ray(
            params,
            tr.cache.path,
            setup.fold,
            run_id=run_id,
            tracking_uri=runs.current_uri(),
            storage=out / "checkpoints" / "ray" / seed_dir,
        )
    else:
        res = fit(
            setup.model,
            setup.train_loader,
            setup.val_loader,
            cfg,
            n_classes=len(setup.classes),
            checkpoint_dir=out / "checkpoints" / f"fold-{key}",
            on_epoch=lambda epoch, m: runs.log_epoch(m, epoch),
            fingerprint=setup.fingerprint,
            device=device,
            desc=f"train fold {key}",
        )
    if res.start_epoch:  # resumed: log epochs a previous run may not have recorded
        have = runs.logged_steps(run_id, "val_uar")
        for h in res.history[: res.start_epoch]:
            if int(h["epoch"]) not in have:
                runs.log_epoch(h, int(h["epoch"]))
    return res


def _fold_reports(
    res: FitResult, cm: np.ndarray, classes: list[str], plot_dir: Path, *, key: str, seed: int
) -> None:
    """Confusion matrix, curves and per-class recall of run `key`; logged under plots/."""
    fold_dir = plot_dir / f"fold-{key}"
    fold = key.split("-")[0]
    plots.confusion_png(
        cm,
        classes,
        fold_dir / "confusion_val.png",
        title=f"fold {fold} seed {seed} validation ({res.select} epoch {res.best_epoch})",
    )
    plots.curves_png({f"fold {key}": res.history}, fold_dir / "curves.png")
    _write_curves(res.history, fold_dir / "curves.csv")
    write_csv(fold_dir / "per_class_val.csv", pd.DataFrame(class_report(cm, classes)))
    runs.log_artifacts(fold_dir, "plots")


def _save_fold_model(
    model_file: Path,
    params: Params,
    tr: TrainRun,
    setup: FoldSetup,
    res: FitResult,
    val: dict[str, float],
    run_id: str,
) -> None:
    cache = tr.cache
    info: dict[str, Any] = {
        "fold": setup.fold,
        "seed": params.train.seed,
        "best_epoch": res.best_epoch,
        **val,
        "dataset": tr.dataset,
        "protocol": cache.protocol,
        "leaky": cache.leaky,
        "n_folds": cache.n_folds,
        "splits": card_doc.split_counts(
            cache.index, setup.fold, setup.classes, attribute=cache.stratify
        ),
        "mlflow_run_id": run_id,
        "mlflow_parent_run_id": tr.parent_id,
        "data_fingerprint": tr.tags.get("data_fingerprint", ""),
        "git_commit": tr.tags.get("git_commit", ""),
    }
    card = card_from_params(
        params,
        classes=setup.classes,
        dims=setup.dims,
        stats=setup.stats,
        cache_meta={k: cache.meta[k] for k in META_KEYS if k in cache.meta},
        run=info,
        git_commit=tr.tags.get("git_commit"),
    )
    checkpoints.save_model_file(model_file, res.best_state, card)


def _example(setup: FoldSetup) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """An input example (a validation batch) and the kept model's probabilities for it."""
    from aver.tracking.pyfunc import input_example

    example = input_example(next(iter(setup.val_loader)))
    return example, probabilities(setup.model, {k: torch.as_tensor(v) for k, v in example.items()})


def _log_and_register(
    params: Params, dataset: str, chosen: FoldOutcome, model_file: Path, cache: FeatureCache
) -> dict[str, Any]:
    """Log model.pt as a pyfunc in the active (parent) run; register; maybe move the alias."""
    tcfg = params.tracking
    if not tcfg.log_model:
        return {}
    from aver.tracking.pyfunc import log_pyfunc

    assert chosen.example_probs is not None
    val_uar = chosen.val["val_uar"]
    version_tags = {
        "val_uar": f"{val_uar:.6f}",
        "fold": chosen.fold,
        "seed": chosen.seed,
        "dataset": dataset,
        "protocol": cache.protocol,
        "leaky": str(cache.leaky),
        "fold_run_id": chosen.run_id,
        "model": params.train.model.name,
    }
    info = log_pyfunc(model_file, chosen.example, chosen.example_probs, tags=version_tags)
    result: dict[str, Any] = {"model_uri": info.model_uri}
    if tcfg.register_model:
        name = runs.experiment_name(tcfg, dataset)
        mv = registry.register(info.model_uri, name, version_tags)
        reg = registry.promote_if_better(name, str(mv.version), tcfg.champion_alias)
        runs.set_tags(
            {
                "registered_model": name,
                "registered_version": str(mv.version),
                tcfg.champion_alias: str(reg.champion),
            }
        )
        result.update(
            {
                "registered_model": name,
                "version": str(mv.version),
                "alias": tcfg.champion_alias,
                "champion": reg.champion,
                "previous_champion": reg.previous_champion,
            }
        )
    return result


def _copy_model(src: Path, dst: Path) -> None:
    checkpoints.save(dst, checkpoints.load_model_file(src))


def _write_curves(history: list[dict[str, float]], target: Path) -> None:
    cols = [
        "epoch",
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
        "train_uar",
        "val_uar",
        "val_macro_f1",
        "lr",
    ]
    frame = pd.DataFrame(history)
    frame = frame[[c for c in cols if c in frame.columns]]
    frame["epoch"] = frame["epoch"].astype(int)
    write_csv(target, frame)


def _read_session(path: Path, key: str) -> dict[str, Any]:
    """MLflow run ids of an interrupted train run with the same configuration, if any."""
    import json

    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("key") == key and not data.get("finished"):
                return data
        except ValueError:
            pass
    return {"key": key, "folds": {}}

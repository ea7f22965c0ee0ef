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

import mlflow
import numpy as np
import pandas as pd
import torch
from torch import nn

from aver.config import Params, flatten
from aver.errors import ConfigError
from aver.features.cache import FeatureCache
from aver.features.loader import make_loader
from aver.io.atomic import write_csv, write_json
from aver.model_card import card_from_params
from aver.models import build_model
from aver.redact import redact_obj, redact_uri
from aver.tracking import registry, runs
from aver.training import checkpoints, ddp, plots
from aver.training.loop import (
    FitResult,
    config_fingerprint,
    fit,
    predict,
    resolve_device,
    seed_everything,
)
from aver.training.metrics import (
    aggregate_folds,
    class_report,
    classification_metrics,
    confusion_matrix,
)
from aver.training.presets import resolve_params
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
    "config",
)


@dataclass
class FoldSetup:
    fold: int
    model: nn.Module
    train_loader: Any
    val_loader: Any
    classes: list[str]
    dims: dict[str, int]
    fingerprint: str  # identifies the data (joins the checkpoint's config hash)
    stats: dict[str, Any]


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


def with_seed(params: Params, seed: int) -> Params:
    """params of one (fold, seed) run: train.seed = seed, train.seeds = null."""
    train = params.train.model_copy(update={"seed": int(seed), "seeds": None})
    return params.model_copy(update={"train": train})


def cache_dims(cache: FeatureCache) -> dict[str, int]:
    """Model input sizes from the cache's array shapes: audio (Ta, F), video (Tv, S, S, 3)."""
    return {
        "audio_dim": int(cache.shapes["audio"][0][-1]),
        "face_size": int(cache.shapes["video"][0][1]),
    }


def resolve_folds(spec: Any, n_folds: int, source: str = "train.folds") -> list[int]:
    """`all` -> every fold; a list is checked against the cache's fold count."""
    folds = list(range(n_folds)) if spec == "all" else sorted(set(int(f) for f in spec))
    bad = [f for f in folds if not 0 <= f < n_folds]
    if not folds or bad:
        raise ConfigError(
            f"{source}: folds {bad or folds} not in 0..{n_folds - 1}",
            fix=f"use `all` or fold numbers below {n_folds}",
        )
    return folds


def prepare_fold(
    params: Params,
    cache: FeatureCache | str | Path,
    fold: int,
    *,
    num_workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> FoldSetup:
    """Seeded model + train/val loaders of one fold (shared by the train stage and Ray Tune).

    world_size > 1 (a DDP rank): the train loader holds this rank's shard of each epoch in
    batches of batch_size // world_size, so the global batch stays train.batch_size.
    """
    if not isinstance(cache, FeatureCache):
        cache = FeatureCache(cache)
    cfg = params.train
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    workers = cfg.num_workers if num_workers is None else num_workers
    pin = resolve_device(cfg.device).type == "cuda"
    train_loader = make_loader(
        cache,
        fold,
        "train",
        cfg.batch_size // world_size,
        train=True,
        seed=cfg.seed,
        num_workers=workers,
        augment=cfg.augment,
        pin_memory=pin,
        rank=rank,
        world_size=world_size,
    )
    val_loader = make_loader(
        cache, fold, "val", cfg.batch_size, train=False, num_workers=workers, pin_memory=pin
    )
    dims = cache_dims(cache)
    model = build_model(cfg.model, n_classes=len(cache.classes), **dims)
    fp = runs.data_fingerprint(cache.path)["data_fingerprint"]
    return FoldSetup(
        fold=fold,
        model=model,
        train_loader=train_loader,
        val_loader=val_loader,
        classes=list(cache.classes),
        dims=dims,
        fingerprint=f"{fp}:fold{fold}",
        stats=cache.fold_stats(fold).to_dict(),
    )


def run(params: Params) -> dict[str, Any]:
    """Train the configured folds; write models/, log to MLflow, register the model."""
    resolved, applied = resolve_params(params)
    cfg = resolved.train
    cache = FeatureCache(resolved.cache.out)
    folds = resolve_folds(cfg.folds, cache.n_folds)
    model_fold = folds[0] if cfg.model_fold is None else cfg.model_fold
    if model_fold not in folds:
        raise ConfigError(
            f"train.model_fold {model_fold} is not among train.folds {folds}",
            fix="add it to train.folds or leave train.model_fold null",
        )
    if cfg.executor == "ray":
        ddp.check_scaling(cfg)
    seeds = cfg.run_seeds()
    multi = len(seeds) > 1
    out = Path(cfg.out)
    dataset = resolved.data.dataset
    fp = runs.data_fingerprint(cache.path)
    commit, dirty = git_state(".")
    tags = {
        **runs.stage_tags("train"),
        "dataset": dataset,
        "protocol": cache.protocol,
        "leaky": str(cache.leaky),
        "git_commit": commit,
        "git_dirty": str(dirty),
        **fp,
    }
    if cfg.preset not in (None, "none"):
        tags["preset"] = str(cfg.preset)
    flat = flatten(resolved)
    config_doc = {
        "params": redact_obj(resolved.model_dump(mode="json")),
        "applied_overrides": applied,
    }
    store = redact_uri(runs.tracking_uri(resolved.tracking))  # as configured, before setup
    exp_id = runs.setup(resolved.tracking, dataset)
    session_path = out / "checkpoints" / "mlflow.json"
    session_key = config_fingerprint(cfg, fp["data_fingerprint"])
    session = _read_session(session_path, session_key)
    runs.close_stale(
        exp_id, "train", keep=[session.get("parent"), *session.get("folds", {}).values()]
    )
    log.info(
        "training %s folds %s x seeds %s (model: fold %d, seed %d) on %s; MLflow %s, experiment %s",
        cfg.model.name,
        folds,
        seeds,
        model_fold,
        seeds[0],
        f"{cfg.workers} Ray Train workers ({'GPU' if cfg.use_gpu else 'CPU'})"
        if cfg.executor == "ray"
        else resolve_device(cfg.device),
        store,
        runs.experiment_name(resolved.tracking, dataset),
    )

    outcomes: dict[tuple[int, int], FoldOutcome] = {}
    with runs.start(
        exp_id, run_name=f"train-{cfg.model.name}", run_id=session.get("parent"), tags=tags
    ) as parent:
        parent_id = parent.info.run_id
        session["parent"] = parent_id
        write_json(session_path, session)
        runs.log_params(flat)
        runs.log_yaml(config_doc, "config/resolved_params.yaml")
        for fold in folds:
            for seed in seeds:
                outcomes[(fold, seed)] = _train_fold(
                    with_seed(resolved, seed),
                    cache,
                    fold,
                    exp_id,
                    parent_id,
                    tags,
                    config_doc,
                    session,
                    session_path,
                    key=run_key(fold, seed, multi),
                    keep_example=(fold, seed) == (model_fold, seeds[0]),
                )
        agg = aggregate_folds([o.val for o in outcomes.values()])
        mlflow.log_metrics({f"{k}_mean": v["mean"] for k, v in agg.items()})
        mlflow.log_metrics({f"{k}_std": v["std"] for k, v in agg.items()})
        mlflow.log_metric("n_runs", len(outcomes))
        chosen = outcomes[(model_fold, seeds[0])]
        first = {f: outcomes[(f, seeds[0])] for f in folds}
        _copy_model(chosen.model_file, out / "model.pt")
        plot_dir = out / "plots"
        _write_curves(chosen.fit.history, plot_dir / "curves.csv")
        plots.curves_png(
            {f"fold {o.key}": o.fit.history for o in outcomes.values()},
            plot_dir / "curves.png",
            title=f"{dataset} {cfg.model.name}",
        )
        mlflow.log_artifact(str(plot_dir / "curves.png"), "plots")
        mlflow.log_artifact(str(plot_dir / "curves.csv"), "plots")
        summary: dict[str, Any] = {
            "dataset": dataset,
            "protocol": cache.protocol,
            "leaky": cache.leaky,
            "n_folds": cache.n_folds,
            "folds_trained": folds,
            "seeds": seeds,
            "model_fold": model_fold,
            "model_seed": seeds[0],
            "model": cfg.model.name,
            "runs": [
                {
                    "fold": o.fold,
                    "seed": o.seed,
                    "key": o.key,
                    "path": o.model_file.relative_to(out).as_posix(),
                    **_run_record(o),
                }
                for o in outcomes.values()
            ],
            "folds": {str(k): _run_record(o) for k, o in first.items()},  # first seed's runs
            "val": agg,  # mean/std over all (fold, seed) runs
            "data": fp,
            "git_commit": commit,
            "applied_overrides": applied,
            "mlflow": {
                "tracking_uri": store,
                "experiment": runs.experiment_name(resolved.tracking, dataset),
                "experiment_id": exp_id,
                "parent_run_id": parent_id,
                "fold_run_ids": {str(k): o.run_id for k, o in first.items()},
                "run_ids": {o.key: o.run_id for o in outcomes.values()},
            },
        }
        summary["mlflow"].update(
            _log_and_register(resolved, dataset, chosen, out / "model.pt", cache)
        )
        write_json(out / SUMMARY, summary)
        mlflow.log_artifact(str(out / SUMMARY))
        write_json(session_path, {**session, "finished": True})
    log.info(
        "val UAR %s", ", ".join(f"fold {o.key}: {o.val['val_uar']:.4f}" for o in outcomes.values())
    )
    return summary


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
    params: Params,
    cache: FeatureCache,
    fold: int,
    exp_id: str,
    parent_id: str,
    tags: dict[str, str],
    config_doc: dict[str, Any],
    session: dict[str, Any],
    session_path: Path,
    *,
    key: str,
    keep_example: bool,
) -> FoldOutcome:
    """One (fold, seed) run; `params` carries the run's seed (with_seed)."""
    cfg = params.train
    seed = cfg.seed
    out = Path(cfg.out)
    setup = prepare_fold(params, cache, fold)
    device = resolve_device(cfg.device)
    fold_runs = session.setdefault("folds", {})
    with runs.start(
        exp_id,
        run_name=f"fold-{key}",
        run_id=fold_runs.get(key),
        parent_run_id=parent_id,
        tags={**tags, "fold": str(fold), "seed": str(seed)},
    ) as child:
        run_id = child.info.run_id
        fold_runs[key] = run_id
        write_json(session_path, session)
        runs.log_params({**flatten(params), "fold": fold, "seed": seed})
        runs.log_yaml(config_doc, "config/resolved_params.yaml")
        t0 = time.perf_counter()
        if cfg.executor == "ray":  # the same fit, data-parallel; rank 0 logs the epochs
            res = ddp.fit_on_ray(
                params,
                cache.path,
                fold,
                run_id=run_id,
                tracking_uri=mlflow.get_tracking_uri(),
                storage=out / "checkpoints" / "ray" / ("" if key == str(fold) else f"seed-{seed}"),
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
            )
        if res.start_epoch:  # resumed: log epochs a previous run may not have recorded
            have = runs.logged_steps(run_id, "val_uar")
            for h in res.history[: res.start_epoch]:
                if int(h["epoch"]) not in have:
                    runs.log_epoch(h, int(h["epoch"]))
        setup.model.load_state_dict(res.best_state)
        pred = predict(
            setup.model, setup.val_loader, device, amp=cfg.amp, label_smoothing=cfg.label_smoothing
        )
        cm = confusion_matrix(pred.y_true, pred.y_pred, len(setup.classes))
        m = classification_metrics(pred.y_true, pred.y_pred, len(setup.classes))
        val = {
            "val_accuracy": m["accuracy"],
            "val_uar": m["uar"],
            "val_macro_f1": m["macro_f1"],
            "val_loss": pred.loss,
        }
        mlflow.log_metrics({f"best_{k}": v for k, v in val.items() if np.isfinite(v)})
        mlflow.log_metrics(
            {
                "best_epoch": res.best_epoch,
                "best_uar_epoch": res.best_uar_epoch,
                "epochs_done": res.epochs_done,
                "train_time_s": time.perf_counter() - t0,
            }
        )
        fold_dir = out / "plots" / f"fold-{key}"
        plots.confusion_png(
            cm,
            setup.classes,
            fold_dir / "confusion_val.png",
            title=f"fold {fold} seed {seed} validation ({res.select} epoch {res.best_epoch})",
        )
        plots.curves_png({f"fold {key}": res.history}, fold_dir / "curves.png")
        _write_curves(res.history, fold_dir / "curves.csv")
        write_csv(fold_dir / "per_class_val.csv", pd.DataFrame(class_report(cm, setup.classes)))
        mlflow.log_artifacts(str(fold_dir), "plots")
        model_file = out / "folds" / f"fold-{key}.pt"
        info = {
            "fold": fold,
            "seed": seed,
            "best_epoch": res.best_epoch,
            **val,
            "stats": setup.stats,
            "cache_meta": {k: cache.meta[k] for k in META_KEYS if k in cache.meta},
            "protocol": cache.protocol,
            "leaky": cache.leaky,
            "mlflow_run_id": run_id,
            "mlflow_parent_run_id": parent_id,
            "data_fingerprint": tags.get("data_fingerprint", ""),
            "git_commit": tags.get("git_commit", ""),
        }
        card = card_from_params(
            params,
            classes=setup.classes,
            dims=setup.dims,
            stats=info.pop("stats"),
            cache_meta=info.pop("cache_meta"),
            run=info,
            git_commit=tags.get("git_commit"),
        )
        checkpoints.save_model_file(model_file, res.best_state, card)
        outcome = FoldOutcome(
            fold=fold, seed=seed, key=key, fit=res, val=val, run_id=run_id, model_file=model_file
        )
        if keep_example:
            from aver.inference import probabilities
            from aver.tracking.pyfunc import input_example

            batch = next(iter(setup.val_loader))
            outcome.example = input_example(batch)
            ex = {k: torch.as_tensor(v) for k, v in outcome.example.items()}
            outcome.example_probs = probabilities(setup.model, ex)
    return outcome


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
        mlflow.set_tags(
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

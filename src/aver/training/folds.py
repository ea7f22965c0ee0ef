"""One fold of the feature cache, ready to train: seeded model, loaders, dims, fingerprint.

Shared by the train stage (aver.training.pipeline), its Ray Train workers (aver.training.ddp),
Ray Tune trials (aver.tuning.trial) and the benchmarks (`fit_fold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from aver.config import Params
from aver.errors import ConfigError
from aver.features.cache import FeatureCache
from aver.features.loader import make_loader
from aver.models import MODEL_CONFIGS, InputDims, build_model
from aver.tracking import runs
from aver.training.loop import fit, resolve_device, seed_everything
from aver.training.state import FitResult


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


def with_seed(params: Params, seed: int) -> Params:
    """params of one (fold, seed) run: train.seed = seed, train.seeds = null."""
    train = params.train.model_copy(update={"seed": int(seed), "seeds": None})
    return params.model_copy(update={"train": train})


def cache_dims(cache: FeatureCache) -> dict[str, int]:
    """`build_model`'s input sizes (`InputDims`) from the cache's array shapes: audio (Ta, F) or
    (Ta, L, D), video (Tv, S, S, 3) or (Tv, E)."""
    dims = InputDims.from_shapes(
        cache.shapes["audio"][0], cache.shapes["video"][0], source=f"{cache.path}/meta.json"
    )
    return dims.kwargs()


def check_modalities(params: Params, cache: FeatureCache) -> None:
    """ConfigError when the model reads an input the cache's clips lack (meta.json
    `modalities`: an audio-only dataset has no video)."""
    model = params.train.model
    lacking = [m for m in type(model).modalities if m not in cache.modalities]
    if not lacking:
        return
    dataset = cache.meta.get("dataset") or params.data.dataset
    has = set(cache.modalities)
    usable = [n for n, (c, _) in MODEL_CONFIGS.items() if set(c.modalities) <= has]
    raise ConfigError(
        f"train.model.name {model.name!r} reads {' and '.join(lacking)}, but dataset "
        f"{dataset!r} has no {' or '.join(lacking)} (its clips are "
        f"{' and '.join(cache.modalities)} files; {cache.path / 'meta.json'})",
        fix=f"use {' or '.join(usable)} (train.model.name)",
    )


def modality_dropout(params: Params) -> float:
    """train.modality_dropout for a fusion model; 0 for a unimodal one (it has one input)."""
    fusion = len(type(params.train.model).modalities) > 1
    return float(params.train.modality_dropout) if fusion else 0.0


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
    check_modalities(params, cache)
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
        modality_dropout=modality_dropout(params),
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


def fit_fold(
    params: Params,
    cache: FeatureCache | str | Path,
    fold: int,
    *,
    num_workers: int = 0,
    **fit_kwargs: Any,
) -> tuple[FoldSetup, FitResult]:
    """`fit` on one fold of the cache, set up as the train stage does: (FoldSetup, result).

    For in-process callers (tune trials, benchmarks); `fit_kwargs` go to `fit`.
    """
    setup = prepare_fold(params, cache, fold, num_workers=num_workers)
    result = fit(
        setup.model,
        setup.train_loader,
        setup.val_loader,
        params.train,
        n_classes=len(setup.classes),
        fingerprint=setup.fingerprint,
        **{"progress": False, **fit_kwargs},
    )
    return setup, result

"""The training loop: one config-driven `fit`, shared by the train stage and Ray Tune.

Each epoch trains, validates, updates the schedule and early stopping, writes `last.pt` (the
full resume state, including the best-so-far weights) atomically, then calls
`on_epoch(epoch, metrics)`. The weights kept as the model are the best val UAR epoch's, or with
`train.select: last` the final epoch's (as the AVT-CA paper reports its model).
A rerun with the same checkpoint directory and configuration resumes after the last finished
epoch: weights, optimizer, schedule, RNG states and history are restored, and each epoch's data
order depends only on (seed, epoch), so a resumed run reproduces an uninterrupted one.
With a `DataParallel` hook (aver.training.ddp) the same loop runs as one rank of a DDP group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from aver import inference
from aver.config import TrainConfig
from aver.errors import AverError
from aver.inference import (  # also imported from here by the pipeline and bench scripts
    Predictions,
    autocast,
    model_inputs,
    move_batch,
    resolve_device,
)
from aver.training import checkpoints
from aver.training.metrics import classification_metrics
from aver.training.optim import Schedule, build_optimizer

if TYPE_CHECKING:
    from aver.training.ddp import DataParallel

log = logging.getLogger(__name__)

# on_epoch(epoch (1-based), metrics) -> True to stop training after this epoch.
EpochCallback = Callable[[int, dict[str, float]], bool | None]
LAST = "last.pt"
# Config fields that do not change what is learned (a checkpoint stays valid across them).
_NOT_FINGERPRINTED = {
    "out",
    "folds",
    "model_fold",
    "use_tuned",
    "tuned_params",
    "num_workers",
    "device",
    "preset",
    "compile",
    "executor",
    "workers",
    "use_gpu",
    "select",  # which epoch's weights to keep: the checkpoint holds both the last and the best
}


class TrainingError(AverError):
    """Training cannot continue (diverged loss, empty loader)."""


@dataclass
class FitResult:
    history: list[dict[str, float]]
    # 1-based epoch whose weights are kept (best_state): with select "best" the epoch with the
    # best val UAR (0: none finite), with select "last" the final epoch trained
    best_epoch: int
    best: dict[str, float]  # that epoch's metrics
    best_state: dict[str, torch.Tensor]  # the kept weights
    start_epoch: int  # epochs already done when this call began (0 = fresh start)
    epochs_done: int
    stopped_early: bool
    extra: dict[str, Any] = field(default_factory=dict)
    select: str = "best"  # cfg.select: which epoch's weights best_epoch/best_state are
    best_uar_epoch: int = 0  # 1-based epoch with the best val UAR, whatever was kept


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); optionally deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def config_fingerprint(cfg: TrainConfig, extra: str = "") -> str:
    """Hash of what determines the learned weights (+ e.g. a data fingerprint)."""
    blob = json.dumps(
        {"train": cfg.model_dump(mode="json", exclude=_NOT_FINGERPRINTED), "extra": extra},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def total_loss(out: Any, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """CE(logits, label) + weighted CE of each branch classifier + the (weighted) aux losses."""
    loss = F.cross_entropy(out.logits.float(), labels, label_smoothing=label_smoothing)
    weight = float(getattr(out, "branch_weight", 0.0))
    if weight > 0:
        for logits in out.branch_logits.values():
            ce = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
            loss = loss + weight * ce
    aux = getattr(out, "aux_losses", None) or {}
    for value in aux.values():
        loss = loss + value.float()
    return loss


def predict(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    device: torch.device | str = "cpu",
    *,
    amp: bool = False,
    label_smoothing: float = 0.0,
    desc: str | None = None,
    progress: bool = False,
) -> Predictions:
    """aver.inference.predict with the training loss (validation: labels, softmax and loss)."""
    try:
        return inference.predict(
            model,
            loader,
            device,
            amp=amp,
            loss_fn=lambda out, labels: total_loss(out, labels, label_smoothing),
            desc=desc,
            progress=progress,
        )
    except inference.EmptyLoader as err:
        raise TrainingError(str(err).split("\nFix:")[0], fix=err.fix) from None


def set_loader_epoch(loader: Any, seed: int, epoch: int) -> None:
    """Make this epoch's order a function of (seed, epoch) only (needed for exact resume)."""
    for obj in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(seed * 1_000_003 + epoch)


def fit(
    model: nn.Module,
    train_loader: Any,
    val_loader: Any,
    cfg: TrainConfig,
    *,
    n_classes: int,
    checkpoint_dir: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
    fingerprint: str = "",
    extra: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    parallel: DataParallel | None = None,
) -> FitResult:
    """Train `model` per `cfg`, early-stopping on validation UAR; resume from checkpoint_dir.

    The result's best_state/best_epoch/best are the kept weights: the best val UAR epoch's, or
    with `cfg.select == "last"` the final epoch's (best_uar_epoch names the best one either way).

    `fingerprint` (e.g. a data hash) joins the config hash stored in the checkpoint: a
    checkpoint written under another configuration is ignored (training starts fresh). `extra`
    (plain types) is stored in the checkpoint and returned, also from a resumed run.
    `parallel`: this process is one DDP rank (the model is wrapped, so gradients are averaged;
    the loaders hold this rank's shard). Train metrics are gathered from every rank; rank 0
    alone validates and broadcasts the result (every rank takes the same early-stopping
    decisions) and alone writes the checkpoint. on_epoch runs on every rank (and must return
    the same there).
    """
    device = torch.device(device) if device is not None else resolve_device(cfg.device)
    use_amp = cfg.amp and device.type == "cuda"
    if cfg.amp and not use_amp:
        log.info("train.amp ignored: mixed precision is used only on CUDA (device: %s)", device)
    model.to(device)
    main = parallel is None or parallel.is_main
    fmodel: nn.Module = model if parallel is None else parallel.wrap(model)
    if cfg.compile:
        if device.type == "cuda":
            fmodel = torch.compile(fmodel)  # type: ignore[assignment]
        else:
            log.info(
                "train.compile ignored: torch.compile is used only on CUDA (device: %s)", device
            )
    steps = _num_batches(train_loader)
    optimizer = build_optimizer(model, cfg)
    schedule = Schedule(optimizer, cfg, steps)
    scaler_on = use_amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=scaler_on) if use_amp else None
    fp = config_fingerprint(cfg, fingerprint)

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state = _load_resume(ckpt_dir, fp)
    history: list[dict[str, float]] = []
    best_uar, best_epoch, bad_epochs, start, stopped = -math.inf, 0, 0, 0, False
    best_state: dict[str, torch.Tensor] | None = None
    extra = dict(extra or {})
    if state is not None:
        assert ckpt_dir is not None  # the state was read from it
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        checkpoints.set_rng_state(state["rng"])
        history = list(state["history"])
        best_uar, best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        bad_epochs, start = int(state["bad_epochs"]), int(state["epoch"])
        stopped = bool(state["stopped_early"])
        extra = {**extra, **state.get("extra", {})}
        best_state = state.get("best_model") or None
        log.info("resuming from %s at epoch %d/%d", ckpt_dir / LAST, start, cfg.epochs)

    epoch = start
    bar = tqdm(total=cfg.epochs, initial=start, desc="epochs", disable=not progress)
    try:
        while epoch < cfg.epochs and not stopped:
            t0 = time.perf_counter()
            set_loader_epoch(train_loader, cfg.seed, epoch)
            train_stats = _train_epoch(
                fmodel,
                train_loader,
                optimizer,
                schedule,
                scaler,
                cfg,
                epoch,
                device,
                use_amp,
                n_classes,
                progress,
                parallel,
            )
            # DDP: rank 0 validates the unwrapped model (a DDP forward would wait for the others)
            val_stats = (
                _validate(fmodel if parallel is None else model, val_loader, cfg, device, n_classes)
                if main
                else {}
            )
            if parallel is not None:
                val_stats = parallel.broadcast(val_stats)
            uar = val_stats["val_uar"]
            epoch += 1
            metrics = {**train_stats, **val_stats, "epoch_time_s": time.perf_counter() - t0}
            history.append({"epoch": float(epoch), **metrics})
            schedule.end_epoch(epoch - 1, uar)
            if uar > best_uar + 1e-12:
                best_uar, best_epoch, bad_epochs = uar, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            patience = cfg.early_stop_patience
            if patience is not None and bad_epochs >= patience and epoch < cfg.epochs:
                stopped = True
                log.info(
                    "early stop at epoch %d: val UAR has not improved for %d epochs "
                    "(best %.4f at epoch %d)",
                    epoch,
                    bad_epochs,
                    best_uar,
                    best_epoch,
                )
            if ckpt_dir is not None and main:
                checkpoints.save(
                    ckpt_dir / LAST,
                    {
                        "format": checkpoints.CHECKPOINT_FORMAT,
                        "fingerprint": fp,
                        "epoch": epoch,
                        "total_epochs": cfg.epochs,
                        "model": model.state_dict(),
                        "best_model": best_state or {},
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "scaler": scaler.state_dict() if scaler is not None else None,
                        "rng": checkpoints.rng_state(),
                        "best_metric": float(best_uar),
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "history": history,
                        "stopped_early": stopped,
                        "extra": extra,
                    },
                )
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", val_uar=f"{uar:.3f}")
            if on_epoch is not None and on_epoch(epoch, dict(metrics)) is True:
                log.info("stopped by the on_epoch callback after epoch %d", epoch)
                stopped = True
    finally:
        bar.close()

    best_uar_epoch, kept_epoch = best_epoch, best_epoch
    if cfg.select == "last" or best_state is None:  # (no finite val UAR: the final weights)
        best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        kept_epoch = epoch if cfg.select == "last" else best_epoch
    kept = next((h for h in history if int(h["epoch"]) == kept_epoch), {})
    if cfg.select == "last":
        log.info(
            "keeping the last epoch's weights (epoch %d; best val UAR %.4f was at epoch %d)",
            kept_epoch,
            best_uar,
            best_uar_epoch,
        )
    return FitResult(
        history=history,
        best_epoch=kept_epoch,
        best=dict(kept),
        best_state=best_state,
        start_epoch=start,
        epochs_done=epoch,
        stopped_early=stopped,
        extra=extra,
        select=cfg.select,
        best_uar_epoch=best_uar_epoch,
    )


def _validate(
    model: nn.Module, loader: Any, cfg: TrainConfig, device: torch.device, n_classes: int
) -> dict[str, float]:
    """Validation loss, accuracy, UAR and macro-F1 of `model` over `loader`."""
    amp = cfg.amp and device.type == "cuda"
    val = predict(model, loader, device, amp=amp, label_smoothing=cfg.label_smoothing)
    vm = classification_metrics(val.y_true, val.y_pred, n_classes)
    return {
        "val_loss": val.loss,
        "val_accuracy": vm["accuracy"],
        "val_uar": vm["uar"],
        "val_macro_f1": vm["macro_f1"],
    }


def _train_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    scaler: Any,
    cfg: TrainConfig,
    epoch: int,
    device: torch.device,
    use_amp: bool,
    n_classes: int,
    progress: bool,
    parallel: DataParallel | None = None,
) -> dict[str, float]:
    model.train()
    loss_sum, n, lr = 0.0, 0, schedule.lr_at(epoch)
    ys, preds = [], []
    for i, batch in enumerate(
        tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
    ):
        lr = schedule.step(epoch, i)
        batch = move_batch(batch, device)
        with autocast(device, use_amp):
            out = model(model_inputs(batch))
            loss = total_loss(out, batch["label"], cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {float(loss.detach())} at epoch {epoch + 1}, step {i + 1}",
                fix="lower train.lr, set train.grad_clip, or check the input features",
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
        b = len(batch["label"])
        loss_sum += float(loss.detach()) * b
        n += b
        ys.append(batch["label"].detach().cpu())
        preds.append(out.logits.detach().argmax(dim=-1).cpu())
    if n == 0:
        raise TrainingError(
            "the training loader yielded no batches",
            fix="check the fold's training split has clips",
        )
    y_true, y_pred = torch.cat(ys), torch.cat(preds)
    if parallel is not None:  # every rank's clips (a padded shard repeats a few)
        parts = parallel.gather((loss_sum, n, y_true, y_pred))
        loss_sum, n = sum(p[0] for p in parts), sum(p[1] for p in parts)
        y_true, y_pred = torch.cat([p[2] for p in parts]), torch.cat([p[3] for p in parts])
    tm = classification_metrics(y_true.numpy(), y_pred.numpy(), n_classes)
    return {
        "train_loss": loss_sum / n,
        "train_accuracy": tm["accuracy"],
        "train_uar": tm["uar"],
        "train_macro_f1": tm["macro_f1"],
        "lr": float(lr),
    }


def _num_batches(loader: Any) -> int:
    try:
        return max(1, len(loader))
    except TypeError:
        return 1


def _load_resume(ckpt_dir: Path | None, fp: str) -> dict[str, Any] | None:
    if ckpt_dir is None or not (ckpt_dir / LAST).exists():
        return None
    state = checkpoints.load(ckpt_dir / LAST)
    if state.get("format") != checkpoints.CHECKPOINT_FORMAT or state.get("fingerprint") != fp:
        log.info(
            "ignoring %s: written under a different configuration; starting fresh", ckpt_dir / LAST
        )
        return None
    return state


def fit_fold(
    params: Any, cache: Any, fold: int, *, num_workers: int = 0, **fit_kwargs: Any
) -> tuple[Any, FitResult]:
    """`fit` on one fold of the cache, set up as the train stage does: (FoldSetup, result).

    For in-process callers (tune trials, benchmarks); `fit_kwargs` go to `fit`.
    """
    from aver.training.pipeline import prepare_fold

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


def fit_for_tuning(
    params: Any,
    cache: str | Path,
    *,
    fold: int,
    on_epoch: EpochCallback | None = None,
    num_workers: int = 0,
    checkpoint_dir: str | Path | None = None,
) -> FitResult:
    """The same `fit` on one fold of the cache, for a Ray Tune trial (reports via on_epoch)."""
    return fit_fold(
        params,
        cache,
        fold,
        num_workers=num_workers,
        checkpoint_dir=checkpoint_dir,
        on_epoch=on_epoch,
    )[1]

"""The training loop: one config-driven `fit`, shared by the train stage and Ray Tune.

Each epoch trains, validates, updates the schedule and early stopping, writes `last.pt` (the
full resume state, including the best-so-far weights) atomically, then calls
`on_epoch(epoch, metrics)`. The weights kept as the model are the best val UAR epoch's, or with
`train.select: last` the final epoch's (as the AVT-CA paper reports its model).
A rerun with the same checkpoint directory and configuration resumes after the last finished
epoch: weights, optimizer, schedule, RNG states and history are restored, and each epoch's data
order depends only on (seed, epoch), so a resumed run reproduces an uninterrupted one.
With a `DataParallel` hook (aver.training.dataparallel, built by aver.training.ddp) the same
loop runs as one rank of a DDP group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
from aver.io.atomic import remove_stale_temps
from aver.output_settings import output_settings
from aver.progress import bar as progress_bar
from aver.training.callbacks import EpochCallback, default_callbacks, run_callbacks
from aver.training.dataparallel import DataParallel
from aver.training.metrics import classification_metrics
from aver.training.optim import Schedule, build_optimizer
from aver.training.state import FitResult, TrainState

log = logging.getLogger(__name__)

LAST = "last.pt"


class TrainingError(AverError):
    """Training cannot continue (diverged loss, empty loader)."""


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
    """Hash of what determines the learned weights (+ e.g. a data fingerprint).

    Fields marked NOT_OUTPUT in TrainConfig (aver.output_settings) leave it unchanged: a
    checkpoint stays valid across them.
    """
    blob = json.dumps({"train": output_settings(cfg, mode="json"), "extra": extra}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def total_loss(out: Any, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """CE(logits, label) + weighted CE of each branch classifier (over the clips that have its
    modality, `ModelOutput.branch_present`) + the (weighted) aux losses."""
    loss = F.cross_entropy(out.logits.float(), labels, label_smoothing=label_smoothing)
    weight = float(getattr(out, "branch_weight", 0.0))
    present = getattr(out, "branch_present", None) or {}
    if weight > 0:
        for name, logits in out.branch_logits.items():
            ce = F.cross_entropy(
                logits.float(), labels, label_smoothing=label_smoothing, reduction="none"
            )
            keep = present.get(name)
            if keep is None:
                ce = ce.mean()
            else:  # mean over the clips with this modality (0 when none has it); no host sync
                k = keep.to(ce.dtype)
                ce = (ce * k).sum() / k.sum().clamp(min=1.0)
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
    desc: str = "train",
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
    `progress`: a bar over epochs (and one over each epoch's batches) on a terminal, else one
    plain line per epoch, "`desc` epoch 3/60: loss .. val_uar .. clips/s .." (aver.progress).
    """
    device = torch.device(device) if device is not None else resolve_device(cfg.device)
    step = _EpochRunner.build(
        model, train_loader, val_loader, cfg, n_classes, device, progress, parallel
    )
    state = _start_state(model, train_loader, cfg, step.scaler(), fingerprint, extra)
    last = Path(checkpoint_dir) / LAST if checkpoint_dir is not None else None
    if last is not None and last.parent.is_dir():
        remove_stale_temps(last.parent)  # a killed run's half-written checkpoint
    if last is not None and state.load(last):
        log.info("resuming from %s at epoch %d/%d", last, state.epoch, cfg.epochs)
    main = parallel is None or parallel.is_main
    callbacks = default_callbacks(cfg.early_stop_patience, last if main else None, on_epoch)
    bar = _epoch_bar(cfg.epochs, state.epoch, desc, enabled=progress and main)
    try:
        while state.epoch < cfg.epochs and not state.stopped:
            metrics = step(state)
            state.end_epoch(metrics)
            run_callbacks(callbacks, state, metrics)  # the checkpoint first, then the progress
            bar.set_postfix(_epoch_postfix(metrics, step.clips_per_s))
            bar.update(1)
    finally:
        bar.close()
    return state.result(cfg.select)


def _epoch_bar(epochs: int, done: int, desc: str, *, enabled: bool) -> Any:
    """The bar over epochs: tqdm on a terminal, else one plain line per epoch."""
    return progress_bar(
        total=epochs, initial=done, desc=desc, unit="epoch", disable=not enabled, each=True
    )


def _epoch_postfix(metrics: Mapping[str, float], clips_per_s: float) -> dict[str, str]:
    """What the progress shows after an epoch: loss, val UAR, training clips/s."""
    return {
        "loss": f"{metrics['train_loss']:.3f}",
        "val_uar": f"{metrics['val_uar']:.3f}",
        "clips/s": f"{clips_per_s:.0f}",
    }


def _start_state(
    model: nn.Module,
    train_loader: Any,
    cfg: TrainConfig,
    scaler: Any,
    fingerprint: str,
    extra: dict[str, Any] | None,
) -> TrainState:
    """A fresh TrainState: optimiser, LR schedule and grad scaler for `model` per `cfg`."""
    optimizer = build_optimizer(model, cfg)
    return TrainState(
        model=model,
        optimizer=optimizer,
        schedule=Schedule(optimizer, cfg, _num_batches(train_loader)),
        scaler=scaler,
        fingerprint=config_fingerprint(cfg, fingerprint),
        total_epochs=cfg.epochs,
        extra=dict(extra or {}),
    )


@dataclass
class _EpochRunner:
    """One epoch of training then validation, on one device (or as one DDP rank)."""

    model: nn.Module  # the unwrapped model (validated under DDP, whose forward would wait)
    fmodel: nn.Module  # what trains: the model, DDP-wrapped and/or compiled
    train_loader: Any
    val_loader: Any
    cfg: TrainConfig
    n_classes: int
    device: torch.device
    use_amp: bool
    progress: bool
    parallel: DataParallel | None
    _scaler: Any = None
    clips_per_s: float = 0.0  # the last training pass's (this rank's clips)

    @classmethod
    def build(
        cls,
        model: nn.Module,
        train_loader: Any,
        val_loader: Any,
        cfg: TrainConfig,
        n_classes: int,
        device: torch.device,
        progress: bool,
        parallel: DataParallel | None,
    ) -> _EpochRunner:
        use_amp = cfg.amp and device.type == "cuda"
        if cfg.amp and not use_amp:
            log.info("train.amp ignored: mixed precision is used only on CUDA (device: %s)", device)
        model.to(device)
        fmodel: nn.Module = model if parallel is None else parallel.wrap(model)
        if cfg.compile and device.type == "cuda":
            fmodel = torch.compile(fmodel)  # type: ignore[assignment]
        elif cfg.compile:
            log.info(
                "train.compile ignored: torch.compile is used only on CUDA (device: %s)", device
            )
        return cls(
            model,
            fmodel,
            train_loader,
            val_loader,
            cfg,
            n_classes,
            device,
            use_amp,
            progress,
            parallel,
        )

    def scaler(self) -> Any:
        """The AMP grad scaler (float16 autocast only), made once; None off CUDA."""
        if self._scaler is None and self.use_amp:
            enabled = not torch.cuda.is_bf16_supported()
            self._scaler = torch.amp.GradScaler("cuda", enabled=enabled)
        return self._scaler

    def __call__(self, state: TrainState) -> dict[str, float]:
        """Train epoch `state.epoch` (0-based), validate; the epoch's metrics."""
        t0 = time.perf_counter()
        set_loader_epoch(self.train_loader, self.cfg.seed, state.epoch)
        train_stats, self.clips_per_s = train_epoch(
            self.fmodel,
            self.train_loader,
            state.optimizer,
            state.schedule,
            state.scaler,
            self.cfg,
            state.epoch,
            self.device,
            self.use_amp,
            self.n_classes,
            self.progress,
            self.parallel,
        )
        main = self.parallel is None or self.parallel.is_main
        net = self.fmodel if self.parallel is None else self.model
        val_stats = (
            _validate(net, self.val_loader, self.cfg, self.device, self.n_classes) if main else {}
        )
        if self.parallel is not None:
            val_stats = self.parallel.broadcast(val_stats)
        return {**train_stats, **val_stats, "epoch_time_s": time.perf_counter() - t0}


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


def train_epoch(
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
    show_progress: bool,
    parallel: DataParallel | None = None,
) -> tuple[dict[str, float], float]:
    """One training pass: its metrics and clips/s. Step losses and predictions stay on the
    device until the pass ends (no host sync per step); a non-finite loss is reported then,
    with the first step it occurred at."""
    model.train()
    lr = schedule.lr_at(epoch)
    ys: list[torch.Tensor] = []
    preds: list[torch.Tensor] = []
    losses: list[torch.Tensor] = []  # each step's mean loss x its clips
    n = 0
    t0 = time.perf_counter()
    batches = progress_bar(
        loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not show_progress
    )
    for i, batch in enumerate(batches):
        lr = schedule.step(epoch, i)
        labels = batch["label"]
        batch = move_batch(batch, device)
        with autocast(device, use_amp):
            out = model(model_inputs(batch))
            loss = total_loss(out, batch["label"], cfg.label_smoothing)
        _optimizer_step(model, optimizer, scaler, loss, cfg.grad_clip)
        b = len(labels)
        losses.append(loss.detach().float() * b)
        n += b
        ys.append(labels)
        preds.append(out.logits.detach().argmax(dim=-1))
    if n == 0:
        raise TrainingError(
            "the training loader yielded no batches",
            fix="check the fold's training split has clips",
        )
    step_losses = torch.stack(losses).cpu()
    _check_finite(step_losses, epoch)
    y_pred = torch.cat(preds).cpu()
    seconds = time.perf_counter() - t0
    loss_sum = float(step_losses.sum())
    metrics = _epoch_metrics(loss_sum, n, torch.cat(ys).cpu(), y_pred, n_classes, parallel)
    return {**metrics, "lr": float(lr)}, n / max(seconds, 1e-9)


def _check_finite(step_losses: torch.Tensor, epoch: int) -> None:
    """Raise TrainingError naming the first step of the epoch whose loss was not finite."""
    bad = (~torch.isfinite(step_losses)).nonzero()
    if len(bad) == 0:
        return
    step = int(bad[0])
    raise TrainingError(
        f"the loss became {float(step_losses[step])} at epoch {epoch + 1}, step {step + 1}",
        fix="lower train.lr, set train.grad_clip, or check the input features",
    )


def _optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    loss: torch.Tensor,
    clip: float | None,
) -> None:
    """Backward and one optimiser step (through the AMP grad scaler when enabled), clipping."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()


def _epoch_metrics(
    loss_sum: float,
    n: int,
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    n_classes: int,
    parallel: DataParallel | None,
) -> dict[str, float]:
    """Train loss, accuracy, UAR and macro-F1 of an epoch, over every DDP rank's clips."""
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
    }


def _num_batches(loader: Any) -> int:
    try:
        return max(1, len(loader))
    except TypeError:
        return 1

"""What one training run carries between epochs: `TrainState`, saved and loaded as `last.pt`.

The state holds the model, optimiser, schedule (and AMP scaler), the history, the epoch count
and the best-so-far val UAR with its weights. `save` writes the full resume state (RNG states
included, aver.training.checkpoints); `load` restores it when the file was written under the
same configuration fingerprint, so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aver.training import checkpoints
from aver.training.optim import Schedule

log = logging.getLogger(__name__)


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


@dataclass
class TrainState:
    """Model, optimiser, schedule, history and best-so-far of a run; `epoch` = epochs done."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: Any  # torch.amp.GradScaler, or None off CUDA
    fingerprint: str  # the configuration hash a checkpoint must match to be resumed
    total_epochs: int
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float = -math.inf  # best val UAR so far
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one
    stopped: bool = False
    best_state: dict[str, torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    start_epoch: int = 0  # epochs done when this process began (a resume)

    def end_epoch(self, metrics: dict[str, float]) -> None:
        """Record a finished epoch: history, schedule, best val UAR (and its weights)."""
        uar = metrics["val_uar"]
        self.epoch += 1
        self.history.append({"epoch": float(self.epoch), **metrics})
        self.schedule.end_epoch(self.epoch - 1, uar)
        if uar > self.best_metric + 1e-12:
            self.best_metric, self.best_epoch, self.bad_epochs = uar, self.epoch, 0
            self.best_state = _cpu_copy(self.model)
        else:
            self.bad_epochs += 1

    def to_checkpoint(self) -> dict[str, Any]:
        """The resume state as plain types and tensors (weights_only-loadable)."""
        return {
            "format": checkpoints.CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "total_epochs": self.total_epochs,
            "model": self.model.state_dict(),
            "best_model": self.best_state or {},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": checkpoints.rng_state(),
            "best_metric": float(self.best_metric),
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "stopped_early": self.stopped,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> None:
        """Write the resume state atomically."""
        checkpoints.save(path, self.to_checkpoint())

    def load(self, path: str | Path) -> bool:
        """Restore from `path` if it exists and matches this fingerprint; whether it did."""
        path = Path(path)
        if not path.exists():
            return False
        saved = checkpoints.load(path)
        if (
            saved.get("format") != checkpoints.CHECKPOINT_FORMAT
            or saved.get("fingerprint") != self.fingerprint
        ):
            log.info("ignoring %s: written under a different configuration; starting fresh", path)
            return False
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        checkpoints.set_rng_state(saved["rng"])
        self.history = list(saved["history"])
        self.best_metric, self.best_epoch = float(saved["best_metric"]), int(saved["best_epoch"])
        self.bad_epochs, self.epoch = int(saved["bad_epochs"]), int(saved["epoch"])
        self.start_epoch = self.epoch
        self.stopped = bool(saved["stopped_early"])
        self.extra = {**self.extra, **saved.get("extra", {})}
        self.best_state = saved.get("best_model") or None
        return True

    def result(self, select: str) -> FitResult:
        """The FitResult: the kept weights are the best val UAR epoch's, or with select "last"
        (or no finite val UAR) the final weights."""
        best_state, kept_epoch = self.best_state, self.best_epoch
        if select == "last" or best_state is None:
            best_state = _cpu_copy(self.model)
            kept_epoch = self.epoch if select == "last" else self.best_epoch
        if select == "last":
            log.info(
                "keeping the last epoch's weights (epoch %d; best val UAR %.4f was at epoch %d)",
                kept_epoch,
                self.best_metric,
                self.best_epoch,
            )
        kept = next((h for h in self.history if int(h["epoch"]) == kept_epoch), {})
        return FitResult(
            history=self.history,
            best_epoch=kept_epoch,
            best=dict(kept),
            best_state=best_state,
            start_epoch=self.start_epoch,
            epochs_done=self.epoch,
            stopped_early=self.stopped,
            extra=self.extra,
            select=select,
            best_uar_epoch=self.best_epoch,
        )


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

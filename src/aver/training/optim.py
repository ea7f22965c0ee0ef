"""Optimizers and learning-rate schedules (linear warm-up, then cosine, step or plateau)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from aver.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum, Nesterov off) over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


class Schedule:
    """Sets the learning rate every step from (epoch, step-in-epoch); plateau state per epoch.

    - warm-up: linear from lr/(n+1) to lr over `warmup_epochs`, step by step
    - cosine: from lr to `min_lr` over the remaining epochs, step by step
    - step: lr * gamma ** (epochs after warm-up // step_size)
    - plateau: lr * gamma each time val UAR has not improved for `plateau_patience` epochs
    - none: constant lr (after warm-up)
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
        self.optimizer = optimizer
        self.cfg = cfg
        self.steps = max(1, steps_per_epoch)
        self.base_lr = cfg.lr
        self.plateau_scale = 1.0
        self.plateau_best = -math.inf
        self.plateau_bad = 0

    def lr_at(self, epoch: int, step: int = 0) -> float:
        """Learning rate for step `step` of 0-based `epoch`."""
        cfg = self.cfg
        t = epoch + step / self.steps
        warm = cfg.warmup_epochs
        if warm and t < warm:
            return self.base_lr * (t * self.steps + 1) / (warm * self.steps + 1)
        if cfg.schedule == "cosine":
            span = max(cfg.epochs - warm, 1)
            progress = min(max((t - warm) / span, 0.0), 1.0)
            cos = 0.5 * (1 + math.cos(math.pi * progress))
            return cfg.min_lr + (self.base_lr - cfg.min_lr) * cos
        if cfg.schedule == "step":
            return self.base_lr * cfg.gamma ** ((epoch - warm) // cfg.step_size)
        if cfg.schedule == "plateau":
            return max(self.base_lr * self.plateau_scale, cfg.min_lr)
        return self.base_lr

    def step(self, epoch: int, step: int) -> float:
        """Set and return the lr for this optimisation step."""
        lr = self.lr_at(epoch, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def end_epoch(self, epoch: int, val_uar: float) -> None:
        """Update plateau state after a validated epoch (no-op for other schedules)."""
        if self.cfg.schedule != "plateau" or epoch < self.cfg.warmup_epochs:
            return
        if val_uar > self.plateau_best + 1e-12:
            self.plateau_best, self.plateau_bad = val_uar, 0
            return
        self.plateau_bad += 1
        if self.plateau_bad >= self.cfg.plateau_patience:
            self.plateau_scale *= self.cfg.gamma
            self.plateau_bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "plateau_scale": float(self.plateau_scale),
            "plateau_best": float(self.plateau_best),
            "plateau_bad": int(self.plateau_bad),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.plateau_best = float(state["plateau_best"])
        self.plateau_bad = int(state["plateau_bad"])

"""What `fit` does after each epoch, in order: early stopping, the checkpoint, the caller's hook.

A callback gets the `TrainState` (its epoch already counted) and the epoch's metrics; it may
set `state.stopped`. The checkpoint is written before the caller's hook runs, so a hook that
reports it (Ray Tune, Ray Train) or fails after it finds the epoch saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aver.training.state import TrainState

log = logging.getLogger(__name__)

# on_epoch(epoch (1-based), metrics) -> True to stop training after this epoch.
EpochCallback = Callable[[int, dict[str, float]], bool | None]


class Callback(Protocol):
    def __call__(self, state: TrainState, metrics: dict[str, float]) -> None: ...


@dataclass(frozen=True)
class EarlyStopping:
    """Stop once val UAR has not improved for `patience` epochs (None: never)."""

    patience: int | None

    def __call__(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.patience is None or state.bad_epochs < self.patience:
            return
        if state.epoch < state.total_epochs:
            state.stopped = True
            log.info(
                "early stop at epoch %d: val UAR has not improved for %d epochs "
                "(best %.4f at epoch %d)",
                state.epoch,
                state.bad_epochs,
                state.best_metric,
                state.best_epoch,
            )


@dataclass(frozen=True)
class Checkpointing:
    """Save the full resume state to `path` after every epoch."""

    path: Path

    def __call__(self, state: TrainState, metrics: dict[str, float]) -> None:
        state.save(self.path)


@dataclass(frozen=True)
class EpochHook:
    """The caller's `on_epoch(epoch, metrics)` (tracking, Tune reports); True stops training."""

    on_epoch: EpochCallback

    def __call__(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.on_epoch(state.epoch, dict(metrics)) is True:
            log.info("stopped by the on_epoch callback after epoch %d", state.epoch)
            state.stopped = True


def default_callbacks(
    patience: int | None, checkpoint: Path | None, on_epoch: EpochCallback | None
) -> list[Callback]:
    """Early stopping, then the checkpoint (when a path is given), then `on_epoch`."""
    out: list[Callback] = [EarlyStopping(patience)]
    if checkpoint is not None:
        out.append(Checkpointing(checkpoint))
    if on_epoch is not None:
        out.append(EpochHook(on_epoch))
    return out


def run_callbacks(
    callbacks: Sequence[Callback], state: TrainState, metrics: dict[str, float]
) -> None:
    for callback in callbacks:
        callback(state, metrics)

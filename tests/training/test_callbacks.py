"""fit's per-epoch callbacks: early stopping, checkpointing, the caller's hook, their order."""

from __future__ import annotations

from aver.training.callbacks import (
    Checkpointing,
    EarlyStopping,
    EpochHook,
    default_callbacks,
    run_callbacks,
)
from tests.training.test_state import _metrics, _state


def test_early_stopping_after_patience_but_not_on_the_last_epoch():
    state = _state()
    stop = EarlyStopping(patience=2)
    for uar in (0.5, 0.4):
        state.end_epoch(_metrics(uar))
        stop(state, {})
    assert not state.stopped
    state.end_epoch(_metrics(0.4))
    stop(state, {})
    assert state.stopped
    late = _state()
    late.total_epochs = 3
    for uar in (0.5, 0.4, 0.4):
        late.end_epoch(_metrics(uar))
    stop(late, {})
    assert not late.stopped  # the run ends anyway: not an early stop
    EarlyStopping(None)(state, {})


def test_the_checkpoint_is_written_before_the_hook_runs(tmp_path):
    seen = []

    def hook(epoch, metrics):
        seen.append((epoch, metrics, (tmp_path / "last.pt").exists()))
        return True

    state = _state()
    callbacks = default_callbacks(None, tmp_path / "last.pt", hook)
    assert [type(c) for c in callbacks] == [EarlyStopping, Checkpointing, EpochHook]
    state.end_epoch(_metrics(0.5))
    run_callbacks(callbacks, state, _metrics(0.5))
    assert seen == [(1, _metrics(0.5), True)] and state.stopped
    assert [type(c) for c in default_callbacks(3, None, None)] == [EarlyStopping]

"""Test-only fault injection for sweeps: `aver tune` with every trial wrapped.

python -m tests.tuning.faults --params P  (repository root on PYTHONPATH)
runs the tune stage with aver.tuning.trial.run_trial replaced by `faulty_trial`, which this
module ships to the Ray workers by value (they import only aver). In the trial process:
AVER_TUNE_FAIL_ALWAYS set: every trial raises at start. AVER_TUNE_FAIL_ONCE=PATH: the first
trial to report an epoch (after that epoch's checkpoint) creates PATH and raises once, so
FailureConfig must retry it from there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

FAIL_ONCE_ENV = "AVER_TUNE_FAIL_ONCE"
FAIL_ALWAYS_ENV = "AVER_TUNE_FAIL_ALWAYS"


def faulty_trial(config: dict[str, Any], **kwargs: Any) -> None:
    """aver's trial, failing as the environment asks."""
    from ray import tune

    from aver.tuning.trial import run_trial

    if os.environ.get(FAIL_ALWAYS_ENV):
        raise RuntimeError(f"injected trial failure ({FAIL_ALWAYS_ENV})")
    fault = os.environ.get(FAIL_ONCE_ENV)
    report = tune.report

    def report_then_fail_once(*args: Any, **kw: Any) -> None:
        report(*args, **kw)
        if fault and not Path(fault).exists():
            Path(fault).write_text("failed once\n")
            raise RuntimeError(f"injected trial failure ({FAIL_ONCE_ENV}={fault})")

    tune.report = report_then_fail_once
    try:
        run_trial(config, **kwargs)
    finally:
        tune.report = report


def main(argv: list[str]) -> None:
    import ray.cloudpickle

    from aver import cli
    from aver.tuning import trial

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    trial.run_trial = faulty_trial  # type: ignore[assignment]
    cli.main(["tune", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])

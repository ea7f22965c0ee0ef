"""One Ray Tune trial: sampled values over the resolved params -> the shared training loop.

Each trial is an MLflow child run of the sweep's run that logs the fully resolved config it ran
with (flattened params and `config.yaml`) and every epoch's metrics. Trials save a Tune
checkpoint each epoch (the training loop's `last.pt` plus the trial's MLflow run id), so a
retried (`tune.max_failures`) or restored trial continues from its last epoch in its own run.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import tune

from aver import threads
from aver.config import parse_params, with_overrides
from aver.io.atomic import write_json
from aver.tracking import runs
from aver.training.folds import fit_fold
from aver.tuning.data_access import ensure_cache

log = logging.getLogger(__name__)
METRIC = "val_uar"
TRIAL_STATE = "trial.json"  # in each trial checkpoint, beside last.pt: MLflow run id, epoch
TRIAL_ID_TAG = "aver.trial_id"


def run_trial(
    config: dict[str, Any],
    *,
    base: dict[str, Any],
    cache_dir: str,
    repo_root: str,
    tracking_uri: str,
    parent_run_id: str,
    workers: int,
) -> None:
    """One trial: params + sampled overrides -> the shared training loop, reporting each epoch.

    Continues from the trial's latest checkpoint when Ray restarts or restores it.
    """
    threads.apply_ray_assigned()  # tune.cpus_per_trial threads
    params = with_overrides(parse_params(base), config, "tune.space")
    cache = ensure_cache(Path(cache_dir), params.tune.cache_access, Path(repo_root))
    node = ray.get_runtime_context().get_node_id()
    assigned = json.dumps(ray.get_runtime_context().get_assigned_resources(), sort_keys=True)
    uri = runs.connect(tracking_uri)  # credentials to MLflow's env vars
    with tempfile.TemporaryDirectory(prefix="aver-trial-") as tmp:
        work = Path(tmp)  # fit's checkpoint dir; reported to Tune as the trial checkpoint
        state = _restore_checkpoint(work)
        tags = {"aver.ray_node": node, "aver.resources": assigned}
        run = _open_trial_run(uri, state.get("mlflow_run_id"), parent_run_id, tags)
        run.log_config(params)  # the whole config the trial ran with (sampled values included)
        start = int(state.get("epoch", 0))
        logged = run.metric_steps(METRIC) if start else set()

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            if epoch not in logged:
                run.log_metrics(numeric, epoch, finite_only=False)
            write_json(work / TRIAL_STATE, {"mlflow_run_id": run.run_id, "epoch": epoch})
            report = {**numeric, "epoch": epoch, "resumed_from_epoch": start, "node": node}
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(work)))

        try:
            fit_fold(
                params,
                cache,
                params.tune.fold,
                on_epoch=on_epoch,
                num_workers=workers,
                checkpoint_dir=work,
            )
        except SystemExit:  # Ray stopped the trial: the driver records how it ended
            raise
        except BaseException:
            run.end("FAILED")
            raise
        run.end("FINISHED")


def _restore_checkpoint(work: Path) -> dict[str, Any]:
    """Copy the trial's latest Tune checkpoint (last.pt, trial.json) into `work`; its state."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as saved:
        for item in Path(saved).iterdir():
            if item.is_file():
                shutil.copy2(item, work / item.name)
    path = work / TRIAL_STATE
    state = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    log.info("trial resumes after epoch %s (checkpoint %s)", state.get("epoch", "?"), checkpoint)
    return state


def _open_trial_run(
    uri: str, run_id: str | None, parent_run_id: str, placement: dict[str, str]
) -> runs.RunRef:
    """Reopen the trial's MLflow run (a restarted trial), else start one under the sweep's."""
    context = tune.get_context()
    if run_id:
        run = runs.RunRef(run_id, uri)
        if run.exists():
            run.reopen(placement)
            return run
    tags = {
        runs.PARENT_TAG: parent_run_id,
        runs.STAGE_TAG: "tune",
        "aver.kind": "trial",
        TRIAL_ID_TAG: context.get_trial_id(),
        **placement,
    }
    experiment_id = runs.RunRef(parent_run_id, uri).experiment_id
    return runs.RunRef.create(experiment_id, run_name=context.get_trial_name(), tags=tags, uri=uri)

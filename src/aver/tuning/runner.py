"""Run a sweep on local Ray or the cluster at RAY_ADDRESS; each trial is an MLflow child run.

The trial itself is aver.tuning.trial.run_trial (looked up when the tuner is made, so tests can
wrap it). A sweep stopped by SIGTERM or Ctrl-C ends its trial runs KILLED; a rerun restores it
from the state Tune saves at each trial checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from aver.config import Params, with_overrides
from aver.io.atomic import write_json
from aver.parallel import ray_init
from aver.tracking import runs
from aver.tuning import trial
from aver.tuning.capacity import PendingWatch, probe
from aver.tuning.resources import Capacity, loader_workers, plan_trial
from aver.tuning.space import build_space
from aver.tuning.trial import METRIC, TRIAL_ID_TAG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    parent_run_id: str


def sweep_key(params: Params, cache_fingerprint: str) -> str:
    """Identifies a sweep: same tune/train config and data -> same sweep (restored, not rerun)."""
    not_in_key = {"storage_path", "out", "ray_num_cpus", "pending_timeout_s"}
    tune_cfg = params.tune.model_dump(exclude=not_in_key)
    blob = json.dumps(
        {"tune": tune_cfg, "train": params.train.model_dump(), "data": cache_fingerprint},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def init_ray(params: Params) -> Capacity:
    """Connect to RAY_ADDRESS when set, else start a local Ray; returns what it offers."""
    # Workers import aver from this checkout (the same path on every node).
    src = str(Path(__file__).resolve().parents[2])
    ray_init(num_cpus=params.tune.ray_num_cpus, runtime_env={"env_vars": {"PYTHONPATH": src}})
    return probe(local=not os.environ.get("RAY_ADDRESS"))


def make_tuner(
    params: Params,
    sweep: Sweep,
    *,
    cache_dir: Path,
    repo_root: Path,
    tracking_uri: str,
    cluster: Capacity,
) -> tune.Tuner:
    """A new Tuner, or the interrupted one restored from its storage path."""
    cfg = params.tune
    plan = plan_trial(cfg, cluster)
    log.info("%s", plan.reason)
    resources = plan.resources
    trainable = tune.with_resources(
        tune.with_parameters(
            trial.run_trial,
            base=with_overrides(params, {"train.epochs": cfg.max_epochs}).model_dump(),
            cache_dir=str(cache_dir),
            repo_root=str(repo_root),
            tracking_uri=tracking_uri,
            parent_run_id=sweep.parent_run_id,
            workers=loader_workers(resources["cpu"]),
        ),
        resources,
    )
    if tune.Tuner.can_restore(sweep.path):
        log.info("resuming interrupted sweep %s", sweep.path)
        return tune.Tuner.restore(str(sweep.path), trainable, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space=build_space(cfg.space),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=_search(params),
            scheduler=_scheduler(params),
            num_samples=cfg.num_samples,
        ),
        run_config=tune.RunConfig(
            name=sweep.name,
            storage_path=str(sweep.path.parent),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            callbacks=[PendingWatch(cfg.pending_timeout_s, resources, str(cluster))],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=1,
        ),
    )


def _search(params: Params) -> Any:
    """TPE (Optuna) or random search, at most tune.max_concurrent trials at once.

    tune.max_concurrent is set on the search itself: Tune ignores max_concurrent_trials with a
    BasicVariantGenerator passed in (it is no Searcher, so no ConcurrencyLimiter fits it).
    """
    cfg = params.tune
    if cfg.search == "tpe":
        return ConcurrencyLimiter(
            OptunaSearch(metric=METRIC, mode="max", seed=params.train.seed),
            max_concurrent=cfg.max_concurrent,
        )
    return BasicVariantGenerator(random_state=params.train.seed, max_concurrent=cfg.max_concurrent)


def _scheduler(params: Params) -> Any:
    cfg = params.tune
    if cfg.scheduler == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            max_t=cfg.max_epochs,
            grace_period=cfg.grace_period,
            reduction_factor=cfg.reduction_factor,
        )
    return FIFOScheduler()


def record_sweep(sweep: Sweep) -> None:
    """Remember the sweep's MLflow parent run beside Ray's state, so a resume reuses it."""
    write_json(
        sweep.path.parent / f"{sweep.name}.aver.json", {"parent_run_id": sweep.parent_run_id}
    )


def recorded_parent(path: Path, name: str) -> str | None:
    meta = path / f"{name}.aver.json"
    return json.loads(meta.read_text())["parent_run_id"] if meta.exists() else None


def fit_sweep(tuner: tune.Tuner, *, parent_run_id: str, num_samples: int) -> tune.ResultGrid:
    """tuner.fit(), then give every trial's MLflow run the status its trial ended with.

    SIGTERM (Terminated) stops the sweep at once: a `timeout` or scheduler signals the whole
    process group, Ray's own processes included, so no graceful Tune stop is possible; Tune's
    state, saved at each trial checkpoint, is what a rerun restores. Ctrl-C lets Tune stop
    gracefully and return early. Either way the trial runs are closed KILLED and
    KeyboardInterrupt (Terminated for SIGTERM) is raised.
    """
    try:
        results = tuner.fit()
    except KeyboardInterrupt:
        runs.close_children(parent_run_id, "KILLED", STOPPED)
        raise
    stopped = not _all_ended(results, num_samples)
    end_trial_runs(parent_run_id, results, stopped=stopped)
    if stopped:
        raise KeyboardInterrupt("the sweep was stopped before its trials ended")
    return results


STOPPED = "the sweep was stopped (SIGTERM or Ctrl-C) while this trial ran; a rerun resumes it"


def _all_ended(results: tune.ResultGrid, num_samples: int) -> bool:
    """Every trial of the sweep created and ended (finished, stopped by the scheduler, failed)."""
    ended = results.num_terminated + results.num_errors
    return len(results) >= num_samples and ended == len(results)


def end_trial_runs(parent_run_id: str, results: tune.ResultGrid, *, stopped: bool) -> None:
    """Set each trial run left open (or closed KILLED earlier) to how its Ray trial ended.

    A trial process that Ray stops (ASHA, a stopped sweep) cannot end its own run. Each trial's
    latest run gets FAILED (the trial errored), FINISHED (done) or KILLED (the sweep stopped
    first); older runs of a trial still RUNNING are attempts that died: KILLED.
    """
    ended: dict[str, tuple[str, str]] = {}
    for i in range(len(results)):  # ResultGrid is indexable, not typed as iterable
        result = results[i]
        metrics = result.metrics or {}
        if not metrics.get("trial_id"):
            continue
        if result.error is not None:
            ended[metrics["trial_id"]] = ("FAILED", "the trial failed (see results.csv)")
        elif not stopped or metrics.get("done"):
            ended[metrics["trial_id"]] = ("FINISHED", "Ray Tune ended the trial (scheduler)")
        else:
            ended[metrics["trial_id"]] = ("KILLED", STOPPED)
    client = runs.client()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    trial_runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{runs.PARENT_TAG}` = '{parent_run_id}'",
        order_by=["attributes.start_time DESC"],
    )
    seen: set[str | None] = set()
    for run in trial_runs:
        trial_id, status = run.data.tags.get(TRIAL_ID_TAG), run.info.status
        latest = trial_id not in seen
        seen.add(trial_id)
        if latest and trial_id in ended and status in ("RUNNING", "KILLED"):
            want, why = ended[trial_id]
            if want != status:
                runs.close(run.info.run_id, want, why)
        elif status == "RUNNING":
            why = STOPPED if stopped else "the trial's process ended without closing its run"
            runs.close(run.info.run_id, "KILLED", why)

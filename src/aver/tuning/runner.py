"""Run a sweep on local Ray or the cluster at RAY_ADDRESS; each trial is an MLflow child run.

Trials save a Ray Tune checkpoint each epoch (the training loop's `last.pt` plus the trial's
MLflow run id), so a retried (`tune.max_failures`) or restored trial continues from its last
epoch and in its own MLflow run. A sweep stopped by SIGTERM or Ctrl-C ends its trial runs
KILLED; a rerun restores it from the state Tune saves at each trial checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import yaml
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from aver.config import Params, parse_params, with_overrides
from aver.io.atomic import write_json
from aver.parallel import ray_init
from aver.redact import redact_obj
from aver.tracking import runs
from aver.tracking.runs import connect
from aver.tuning.capacity import PendingWatch, probe
from aver.tuning.data_access import ensure_cache
from aver.tuning.resources import Capacity, loader_workers, plan_trial
from aver.tuning.space import build_space
from aver.workspace import code_info

log = logging.getLogger(__name__)
METRIC = "val_uar"
TRIAL_STATE = "trial.json"  # in each trial checkpoint, beside last.pt: MLflow run id, epoch
TRIAL_ID_TAG = "aver.trial_id"
# Fault injection for tests and drills. FAIL_ONCE: when set to a path that does not exist yet,
# the first trial to report an epoch creates it and raises once, after that epoch's checkpoint
# (FailureConfig must retry it from there). FAIL_ALWAYS: every trial raises at start.
FAULT_ONCE_ENV = "AVER_TUNE_FAIL_ONCE"
FAIL_ALWAYS_ENV = "AVER_TUNE_FAIL_ALWAYS"


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


def _trial(
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
    from aver.training.loop import fit_for_tuning

    if os.environ.get(FAIL_ALWAYS_ENV):
        raise RuntimeError(f"injected trial failure ({FAIL_ALWAYS_ENV})")
    params = with_overrides(parse_params(base), config, "tune.space")
    cache = ensure_cache(Path(cache_dir), params.tune.cache_access, Path(repo_root))
    node = ray.get_runtime_context().get_node_id()
    assigned = json.dumps(ray.get_runtime_context().get_assigned_resources(), sort_keys=True)
    client = MlflowClient(connect(tracking_uri))  # credentials to MLflow's env vars
    with tempfile.TemporaryDirectory(prefix="aver-trial-") as tmp:
        work = Path(tmp)  # fit's checkpoint dir; reported to Tune as the trial checkpoint
        state = _restore_checkpoint(work)
        tags = {"aver.ray_node": node, "aver.resources": assigned}
        run_id = _open_trial_run(client, state.get("mlflow_run_id"), parent_run_id, config, tags)
        resolved = yaml.safe_dump(redact_obj(params.model_dump(mode="json")), sort_keys=False)
        client.log_text(run_id, resolved, "config.yaml")  # the whole config the trial ran with
        start = int(state.get("epoch", 0))
        logged = {m.step for m in client.get_metric_history(run_id, METRIC)} if start else set()

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            if epoch not in logged:
                now = int(time.time() * 1000)
                items = [Metric(k, v, now, epoch) for k, v in numeric.items()]
                client.log_batch(run_id, metrics=items, synchronous=True)
            write_json(work / TRIAL_STATE, {"mlflow_run_id": run_id, "epoch": epoch})
            report = {**numeric, "epoch": epoch, "resumed_from_epoch": start, "node": node}
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(work)))
            _fail_once()

        try:
            fit_for_tuning(
                params,
                cache,
                fold=params.tune.fold,
                on_epoch=on_epoch,
                num_workers=workers,
                checkpoint_dir=work,
            )
        except SystemExit:  # Ray stopped the trial: the driver records how it ended
            raise
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")


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
    client: MlflowClient,
    run_id: str | None,
    parent_run_id: str,
    config: dict[str, Any],
    placement: dict[str, str],
) -> str:
    """Reopen the trial's MLflow run (a restarted trial), else start one under the sweep's."""
    context = tune.get_context()
    if run_id and _run_exists(client, run_id):
        client.update_run(run_id, status="RUNNING")
        if runs.CLOSED_TAG in client.get_run(run_id).data.tags:
            client.delete_tag(run_id, runs.CLOSED_TAG)
        for key, value in placement.items():
            client.set_tag(run_id, key, value)
        return run_id
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    tags = {
        runs.PARENT_TAG: parent_run_id,
        runs.STAGE_TAG: "tune",
        "aver.kind": "trial",
        TRIAL_ID_TAG: context.get_trial_id(),
        **placement,
        **code_info().tags(),
    }
    run = client.create_run(experiment_id, run_name=context.get_trial_name(), tags=tags)
    params = [Param(k, str(v)[: runs.MAX_PARAM_CHARS]) for k, v in config.items()]
    client.log_batch(run.info.run_id, params=params, synchronous=True)
    return run.info.run_id


def _run_exists(client: MlflowClient, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _fail_once() -> None:
    fault = os.environ.get(FAULT_ONCE_ENV)
    if fault and not Path(fault).exists():
        Path(fault).write_text("failed once\n")
        raise RuntimeError(f"injected trial failure ({FAULT_ONCE_ENV}={fault})")


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
            _trial,
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
    # tune.max_concurrent is set on the search itself: Tune ignores max_concurrent_trials with
    # a BasicVariantGenerator passed in (it is no Searcher, so no ConcurrencyLimiter fits it).
    search: Any
    if cfg.search == "tpe":
        search = ConcurrencyLimiter(
            OptunaSearch(metric=METRIC, mode="max", seed=params.train.seed),
            max_concurrent=cfg.max_concurrent,
        )
    else:
        search = BasicVariantGenerator(
            random_state=params.train.seed, max_concurrent=cfg.max_concurrent
        )
    scheduler: TrialScheduler
    if cfg.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=cfg.max_epochs,
            grace_period=cfg.grace_period,
            reduction_factor=cfg.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        param_space=build_space(cfg.space),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=search,
            scheduler=scheduler,
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
    client = MlflowClient()
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

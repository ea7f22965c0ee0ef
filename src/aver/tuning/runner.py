"""Run a sweep on local Ray or the cluster at RAY_ADDRESS; each trial is an MLflow child run."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from aver.config import Params, parse_params, with_overrides
from aver.io.atomic import write_json
from aver.parallel import ray_init
from aver.tracking.runs import connect
from aver.tuning.capacity import PendingWatch, probe
from aver.tuning.data_access import ensure_cache
from aver.tuning.resources import Capacity, loader_workers, plan_trial
from aver.tuning.space import build_space

log = logging.getLogger(__name__)
METRIC = "val_uar"
# Fault injection for tests and drills: when set to a path that does not exist yet, the first
# trial to start creates it and raises once (FailureConfig must retry it).
FAULT_ONCE_ENV = "AVER_TUNE_FAIL_ONCE"


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
    experiment: str,
    parent_run_id: str,
    workers: int,
) -> None:
    """One trial: params + sampled overrides -> the shared training loop, reporting each epoch."""
    from aver.training.loop import fit_for_tuning

    fault = os.environ.get(FAULT_ONCE_ENV)
    if fault and not Path(fault).exists():
        Path(fault).write_text("failed once\n")
        raise RuntimeError(f"injected trial failure ({FAULT_ONCE_ENV}={fault})")
    params = with_overrides(parse_params(base), config, "tune.space")
    cache = ensure_cache(Path(cache_dir), params.tune.cache_access, Path(repo_root))
    node = ray.get_runtime_context().get_node_id()
    assigned = json.dumps(ray.get_runtime_context().get_assigned_resources(), sort_keys=True)
    trial_name = tune.get_context().get_trial_name()
    mlflow.set_tracking_uri(connect(tracking_uri))  # credentials to MLflow's env vars
    mlflow.set_experiment(experiment)
    with mlflow.start_run(
        run_name=trial_name,
        parent_run_id=parent_run_id,
        tags={"aver.kind": "trial", "aver.ray_node": node, "aver.resources": assigned},
    ):
        mlflow.log_params(config)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            mlflow.log_metrics(numeric, step=epoch)
            tune.report({**numeric, "epoch": epoch, "node": node})

        try:
            fit_for_tuning(
                params, cache, fold=params.tune.fold, on_epoch=on_epoch, num_workers=workers
            )
        except SystemExit as stop:  # Ray ends a trial (ASHA stop, budget) with SystemExit(0)
            mlflow.end_run("FAILED" if stop.code else "FINISHED")
            raise


def make_tuner(
    params: Params,
    sweep: Sweep,
    *,
    cache_dir: Path,
    repo_root: Path,
    tracking_uri: str,
    experiment: str,
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
            experiment=experiment,
            parent_run_id=sweep.parent_run_id,
            workers=loader_workers(resources["cpu"]),
        ),
        resources,
    )
    if tune.Tuner.can_restore(sweep.path):
        log.info("resuming interrupted sweep %s", sweep.path)
        return tune.Tuner.restore(str(sweep.path), trainable, resume_errored=True)
    if cfg.search == "tpe":
        search = OptunaSearch(metric=METRIC, mode="max", seed=params.train.seed)
    else:
        search = BasicVariantGenerator(random_state=params.train.seed)
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
            max_concurrent_trials=cfg.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=sweep.name,
            storage_path=str(sweep.path.parent),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            callbacks=[PendingWatch(cfg.pending_timeout_s, resources, str(cluster))],
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

"""The `tune` stage: a Ray Tune sweep over the training function, tracked in MLflow."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import mlflow

from aver.config import Params, flatten
from aver.errors import ConfigError, DataError
from aver.tuning.report import best_config, results_table, write_outputs
from aver.tuning.runner import Sweep, init_ray, make_tuner, record_sweep, recorded_parent, sweep_key

log = logging.getLogger(__name__)


def cache_fingerprint(cache: Path) -> str:
    digest = hashlib.sha256()
    for name in ("index.csv", "meta.json"):
        path = cache / name
        if not path.exists():
            raise DataError("feature cache incomplete", path=path, fix="run `dvc repro cache`")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run(params: Params) -> None:
    """Run (or resume) the sweep; write best_params.yaml, results.csv and plots."""
    from aver.tracking.runs import absolute_uri, experiment_name, setup, tracking_uri

    cfg = params.tune
    if not cfg.space:
        raise ConfigError(
            "tune.space is empty: nothing to search",
            fix="declare at least one entry under tune.space in params.yaml",
        )
    cache = Path(cfg.cache_path or params.cache.out).expanduser().resolve()
    name = f"{params.data.dataset}-{sweep_key(params, cache_fingerprint(cache))}"
    storage = Path(cfg.storage_path).expanduser().resolve()
    # As configured, credentials included, so trials on other nodes authenticate too (setup
    # leaves MLflow, and MLFLOW_TRACKING_URI, with the URI without them).
    uri = absolute_uri(tracking_uri(params.tracking))
    setup(params.tracking, params.data.dataset)
    experiment = experiment_name(params.tracking, params.data.dataset)
    mlflow.set_experiment(experiment)
    parent_id = recorded_parent(storage, name)
    if parent_id is None:
        with mlflow.start_run(run_name=f"sweep-{name}", tags={"aver.kind": "sweep"}) as run:
            mlflow.log_params({k: v for k, v in flatten(params).items() if k.startswith("tune.")})
            parent_id = run.info.run_id
    sweep = Sweep(name=name, path=storage / name, parent_run_id=parent_id)
    record_sweep(sweep)
    cluster = init_ray(params)
    log.info("sweep %s on %s; trials report to MLflow run %s", name, cluster, parent_id)
    tuner = make_tuner(
        params,
        sweep,
        cache_dir=cache,
        repo_root=Path.cwd(),
        tracking_uri=uri,
        experiment=experiment,
        cluster=cluster,
    )
    results = tuner.fit()
    keys = list(cfg.space)
    table = results_table(results, keys)
    best = best_config(table, keys)
    out = Path(cfg.out)
    write_outputs(out, table, best)
    with mlflow.start_run(run_id=parent_id):
        mlflow.log_metric("best_val_uar", float(table["val_uar"].max()))
        mlflow.log_params({f"best.{k}": v for k, v in best.items()})
        for path in (out / "best_params.yaml", out / "results.csv", out / "plots" / "sweep.png"):
            mlflow.log_artifact(str(path), artifact_path="sweep")
    log.info("best of %d trials: %s", len(table), best)

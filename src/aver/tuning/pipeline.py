"""The `tune` stage: a Ray Tune sweep over the training function, tracked in MLflow.

The sweep's parent run is RUNNING while its trials run and ends FINISHED, FAILED (every trial
failed, or an error) or KILLED (SIGTERM, Ctrl-C); a rerun of a stopped sweep restores it and
reopens the same parent run.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from aver.config import Params, flatten
from aver.errors import DataError
from aver.io.atomic import write_csv, write_text
from aver.resolution import resolve
from aver.tracking import runs
from aver.tuning.report import best_config, results_table, write_outputs
from aver.tuning.runner import (
    Sweep,
    fit_sweep,
    init_ray,
    make_tuner,
    record_sweep,
    recorded_parent,
    sweep_key,
)
from aver.tuning.space import space_for_model, validate_space

log = logging.getLogger(__name__)


def cache_fingerprint(cache: Path) -> str:
    digest = hashlib.sha256()
    for name in ("index.csv", "meta.json"):
        path = cache / name
        if not path.exists():
            raise DataError("feature cache incomplete", path=path, fix="run `dvc repro cache`")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


NOT_TUNED = "NOT_TUNED.txt"


def run(params: Params) -> None:
    """Run (or resume) the sweep; write best_params.yaml, results.csv and plots.

    The sweep tunes the model `train` would train: `train.preset` is applied first (tuned
    values are not: they are this stage's output). With `train.use_tuned: false` nothing reads
    a sweep's result, so none runs: the stage writes NOT_TUNED.txt saying so (a changed model
    or training setting then costs no sweep).
    """
    if not params.train.use_tuned:
        path = Path(params.tune.out) / NOT_TUNED
        write_text(
            path,
            "No sweep ran: train.use_tuned is false, so train does not read a sweep's result.\n"
            "To tune and train with the result: dvc exp run -S train.use_tuned=true\n",
        )
        log.info("train.use_tuned is false: no sweep (wrote %s)", path)
        return
    params = space_for_model(resolve(params, tuned=False).params)
    cfg = params.tune
    validate_space(params)  # before MLflow or Ray start
    cache = Path(cfg.cache_path or params.cache.out).expanduser().resolve()
    name = f"{params.data.dataset}-{sweep_key(params, cache_fingerprint(cache))}"
    storage = Path(cfg.storage_path).expanduser().resolve()
    # As configured, credentials included, so trials on other nodes authenticate too (setup
    # leaves MLflow, and MLFLOW_TRACKING_URI, with the URI without them).
    uri = runs.absolute_uri(runs.tracking_uri(params.tracking))
    exp_id = runs.setup(params.tracking, params.data.dataset)
    recorded = recorded_parent(storage, name)
    runs.close_stale(exp_id, "tune", keep=[recorded])
    tags = {**runs.stage_tags("tune"), "aver.kind": "sweep"}
    with runs.start(exp_id, run_name=f"sweep-{name}", run_id=recorded, tags=tags) as parent:
        parent_id = parent.info.run_id
        runs.log_params({k: v for k, v in flatten(params).items() if k.startswith("tune.")})
        sweep = Sweep(name=name, path=storage / name, parent_run_id=parent_id)
        record_sweep(sweep)
        cluster = init_ray(params)
        log.info("sweep %s on %s; trials report to MLflow run %s", name, cluster, parent_id)
        tuner = make_tuner(
            params, sweep, cache_dir=cache, repo_root=Path.cwd(), tracking_uri=uri, cluster=cluster
        )
        results = fit_sweep(tuner, parent_run_id=parent_id, num_samples=cfg.num_samples)
        keys = list(cfg.space)
        table = results_table(results, keys)
        out = Path(cfg.out)
        write_csv(out / "results.csv", table)  # also when every trial failed: the errors
        best = best_config(table, keys)
        write_outputs(out, table, best)
        runs.log_metrics({"best_val_uar": float(table["val_uar"].max())})
        runs.log_params({f"best.{k}": v for k, v in best.items()})
        for path in (out / "best_params.yaml", out / "results.csv", out / "plots" / "sweep.png"):
            runs.log_artifact(path, "sweep")
    log.info("best of %d trials: %s", len(table), best)

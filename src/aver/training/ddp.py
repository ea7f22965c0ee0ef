"""One training run over many processes: Ray Train's TorchTrainer runs the shared `fit` as DDP.

`fit_on_ray` starts `train.workers` Ray Train workers (gloo on CPU; nccl and a GPU each with
`train.use_gpu`). Each worker builds the fold with its shard of every epoch in batches of
batch_size // workers (the global batch is kept) and runs `fit` with a `DataParallel` hook:
the model is wrapped by `ray.train.torch.prepare_model` (DDP averages the gradients), rank 0
validates and broadcasts the metrics. Rank 0 alone logs each epoch to the fold's MLflow run
and reports the usual `last.pt` to Ray as the epoch's checkpoint; a rerun with the same storage
resumes from the latest one (Ray Train V2 restores a run by storage path + name, and
`ray.train.get_checkpoint()` hands it to every worker). Rank 0's FitResult returns to the
driver, which carries on exactly as after a local fit. Ray is imported only here, lazily.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from aver import threads
from aver.config import Params, TrainConfig, parse_params
from aver.errors import AverError, ConfigError
from aver.training.dataparallel import DataParallel
from aver.training.folds import prepare_fold
from aver.training.loop import LAST, FitResult, fit

SRC = str(Path(__file__).resolve().parents[2])  # workers import aver from this checkout
MAX_FAILURES = 1  # worker-group restarts (from the latest checkpoint) before the run fails


def check_scaling(cfg: TrainConfig) -> None:
    """The global batch must split evenly over the workers."""
    if cfg.batch_size % cfg.workers:
        raise ConfigError(
            f"train.batch_size {cfg.batch_size} does not split over train.workers "
            f"{cfg.workers} (the batch size is global: each worker takes batch_size // workers)",
            fix="make train.batch_size a multiple of train.workers",
        )


def param_checksum(model: nn.Module) -> float:
    """Sum of every parameter (float64): equal on every rank while DDP keeps them in sync."""
    with torch.no_grad():
        return float(sum(p.detach().double().sum().cpu() for p in model.parameters()))


def fit_on_ray(
    params: Params,
    cache: str | Path,
    fold: int,
    *,
    run_id: str,
    tracking_uri: str,
    storage: str | Path,
) -> FitResult:
    """Train `fold` with `train.workers` DDP workers on Ray; rank 0 logs to MLflow `run_id`.

    Joins RAY_ADDRESS when set, else starts a private local Ray. Ray Train keeps the epochs'
    checkpoints under `storage`/fold-K (a shared filesystem on a multi-node cluster).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from aver.parallel import ray_init

    cfg = params.train
    check_scaling(cfg)
    ray_init(runtime_env={"env_vars": {"PYTHONPATH": SRC}})
    storage = Path(storage).resolve()
    name = f"fold-{fold}"
    trainer = TorchTrainer(
        train_worker,  # type: ignore[arg-type]  # stub says -> None; V2 keeps rank 0's return
        train_loop_config={
            "params": params.model_dump(mode="json"),
            "cache": str(Path(cache).resolve()),
            "fold": fold,
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "run_key": hashlib.sha256(str(storage / name).encode()).hexdigest()[:12],
        },
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as err:  # a worker's AverError (diverged loss, bad data) as itself
        user = _user_error(err)
        if user is None:
            raise
        raise user from None
    res = getattr(result, "return_value", None)
    if not isinstance(res, FitResult):
        raise AverError(
            "Ray Train returned no training result from rank 0",
            fix="use Ray Train V2 (the default in ray 2.60; leave RAY_TRAIN_V2_ENABLED unset)",
        )
    return res


def train_worker(config: dict[str, Any]) -> FitResult | None:
    """One Ray Train worker: its shard of the fold through `fit`; rank 0 returns the result."""
    import ray.train
    import ray.train.torch

    threads.apply_ray_assigned()  # the CPUs of this worker's Ray Train bundle
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    params = parse_params(config["params"], "train_loop_config")
    setup = prepare_fold(params, config["cache"], config["fold"], rank=rank, world_size=world)
    device = ray.train.torch.get_device()
    parallel = DataParallel(rank, world, ray.train.torch.prepare_model, device)
    log_epoch = _epoch_logger(config["tracking_uri"], config["run_id"]) if rank == 0 else None
    # One dir per run and rank: a killed run's is cleared by the next one.
    work = Path(tempfile.gettempdir()) / f"aver-ddp-{config['run_key']}-rank{rank}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    checksums: list[list[float]] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        checksums.append(parallel.gather(param_checksum(setup.model)))
        ckpt = ray.train.Checkpoint.from_directory(str(work)) if parallel.is_main else None
        ray.train.report({**metrics, "epoch": epoch}, checkpoint=ckpt)  # a barrier
        if log_epoch is not None:  # after the checkpoint: a resumed run backfills, not repeats
            log_epoch(metrics, epoch)

    try:
        _restore(ray.train.get_checkpoint(), work)
        res = fit(
            setup.model,
            setup.train_loader,
            setup.val_loader,
            params.train,
            n_classes=len(setup.classes),
            checkpoint_dir=work,
            on_epoch=on_epoch,
            fingerprint=setup.fingerprint,
            device=device,
            progress=False,
            parallel=parallel,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.extra["ddp"] = {
        "world_size": world,
        "batch_per_worker": setup.train_loader.batch_size,
        "steps_per_epoch": len(setup.train_loader),
        "param_checksums": checksums,  # per epoch trained here: one per rank
        "backend": dist.get_backend(),
        "torch_threads": torch.get_num_threads(),
    }
    return res if parallel.is_main else None


def _restore(checkpoint: Any, work: Path) -> None:
    """Copy a Ray checkpoint's last.pt into this worker's checkpoint dir (fit resumes from it)."""
    if checkpoint is None:
        return
    with checkpoint.as_directory() as src:
        if (Path(src) / LAST).exists():
            shutil.copy2(Path(src) / LAST, work / LAST)


def _epoch_logger(tracking_uri: str, run_id: str) -> Callable[[dict[str, float], int], None]:
    """Log an epoch's finite scalars to MLflow run `run_id` at step=epoch (as runs.log_epoch)."""
    from aver.tracking.runs import RunRef

    run = RunRef(run_id, tracking_uri)

    def log(metrics: dict[str, float], epoch: int) -> None:
        run.log_metrics(metrics, epoch)

    return log


def _user_error(err: BaseException) -> AverError | None:
    """The AverError a worker raised, found in Ray Train's failure wrappers, if any."""
    seen: set[int] = set()
    todo: list[Any] = [err]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, AverError):
            return exc
        todo += list(getattr(exc, "worker_failures", {}).values())
        todo += [getattr(exc, "cause", None), exc.__cause__, exc.__context__]
    return None

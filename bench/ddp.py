"""Data-parallel training (train.executor ray) vs one process: clips/s for 1 and 2 workers.

Builds a synthetic feature cache through the real cache stage (the tests' generator: noise
audio and constant-colour faces, default cache geometry; or uses --cache), then runs the real
train stage (aver.training.pipeline.run, fold 0, the default msan model) three times in one
process on the same data with the same global batch and epochs: train.executor local (torch's
default intra-op threads, then 1 thread), and ray with 1 and with 2 workers on one private
local Ray (as reported by the workers); `--repeats` rounds, alternating the
order, each run in a fresh output dir. Per configuration it prints the best round: the stage's
wall time (Ray start-up and shut-down included) and the training throughput, training clips
per epoch / epoch time (training + validation, from the fold run's `epoch_time_s` in MLflow),
the first epoch left out as warm-up.

    python bench/ddp.py --workdir /tmp/aver-bench-ddp [--cache DIR] [--epochs 4] [--batch 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
os.environ["PYTHONPATH"] = str(REPO / "src")  # Ray workers import this checkout
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import torch  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from aver.config import parse_params  # noqa: E402
from aver.features import FeatureCache  # noqa: E402
from aver.training import ddp  # noqa: E402
from aver.training.loop import FitResult  # noqa: E402
from aver.training.pipeline import run as train  # noqa: E402
from tests.features.conftest import build_cache, standard_clips  # noqa: E402


def make_cache(workdir: Path, speakers: int, per_class: int) -> Path:
    """A real cache of speakers x 2 classes x per_class synthetic clips, default geometry."""
    clips = standard_clips(speakers=speakers, per_class=per_class)
    return build_cache(
        workdir / "cache", clips, window_s=2.0, video_fps=5.0, face_size=64, n_mels=64
    )


def run_once(workdir: Path, cache: Path, config: tuple[str, int, int], rnd: int, args) -> dict:
    executor, workers, threads = config
    out = workdir / f"{executor}-{workers}-{threads}-{rnd}"
    params = parse_params(
        {
            "cache": {"out": str(cache)},
            "train": {
                "out": str(out / "models"),
                "epochs": args.epochs,
                "batch_size": args.batch,
                "folds": [0],
                "device": "cpu",
                "early_stop_patience": None,
                "executor": executor,
                "workers": workers,
            },
            "tracking": {
                "tracking_uri": f"sqlite:///{workdir / 'mlruns.db'}",
                "artifact_root": str(workdir / "mlartifacts"),
                "experiment_prefix": f"bench-ddp-{executor}-{workers}-{threads}",
                "log_model": False,
                "register_model": False,
            },
        }
    )
    default_threads = torch.get_num_threads()
    torch_threads = threads or default_threads
    torch.set_num_threads(torch_threads)
    results: list[FitResult] = []  # rank 0's result of a ray run (workers' torch threads)
    fit_on_ray = ddp.fit_on_ray

    def spy(*a, **k) -> FitResult:
        results.append(fit_on_ray(*a, **k))
        return results[-1]

    ddp.fit_on_ray = spy
    t = time.perf_counter()
    try:
        summary = train(params)
    finally:
        wall = time.perf_counter() - t
        torch.set_num_threads(default_threads)
        ddp.fit_on_ray = fit_on_ray
    run_id = summary["mlflow"]["fold_run_ids"]["0"]
    client = MlflowClient(f"sqlite:///{workdir / 'mlruns.db'}")
    history = sorted(client.get_metric_history(run_id, "epoch_time_s"), key=lambda m: m.step)
    times = [m.value for m in history][1:]  # first epoch: warm-up
    clips = len(FeatureCache(cache).split_ids(0, "train"))
    return {
        "executor": executor,
        "workers": workers,
        "threads": results[0].extra["ddp"]["torch_threads"] if results else torch_threads,
        "wall": wall,
        "epoch_s": statistics.mean(times),
        "clips_per_s": clips * len(times) / sum(times),
        "val_uar": summary["folds"]["0"]["val_uar"],
        "clips": clips,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/aver-bench-ddp"))
    ap.add_argument("--cache", type=Path, default=None, help="an existing feature cache")
    ap.add_argument("--speakers", type=int, default=12)
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16, help="global batch size")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; the best is shown")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    load = os.getloadavg()[0]
    if args.cache:
        cache = args.cache.resolve()
    else:
        cache = make_cache(args.workdir, args.speakers, args.per_class)
    # (executor, workers, torch threads in this process; 0: torch's default)
    configs = [("local", 1, 0), ("local", 1, 1), ("ray", 1, 0), ("ray", 2, 0)]
    done: dict[tuple[str, int, int], list[dict]] = {c: [] for c in configs}
    for rnd in range(args.repeats):
        for c in configs if rnd % 2 == 0 else configs[::-1]:
            done[c].append(run_once(args.workdir, cache, c, rnd, args))
    rows = [max(done[c], key=lambda r: r["clips_per_s"]) for c in configs]
    base = rows[2]["clips_per_s"]
    print(
        f"\n`python bench/ddp.py --epochs {args.epochs} --batch {args.batch} "
        f"--repeats {args.repeats}` (msan, fold 0: {rows[0]['clips']} training clips, global "
        f"batch {args.batch}, {os.cpu_count()} CPU cores, load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end; best of {args.repeats} rounds)\n"
    )
    print(
        "| executor | workers | torch threads each | stage wall s | epoch s (mean) "
        "| train clips/s | vs ray x1 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['executor']} | {r['workers']} | {r['threads']} | {r['wall']:.1f} | "
            f"{r['epoch_s']:.2f} | {r['clips_per_s']:.1f} | {r['clips_per_s'] / base:.2f}x |"
        )
    import ray

    ray.shutdown()


if __name__ == "__main__":
    main()

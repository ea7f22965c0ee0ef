"""ASHA vs running every trial to completion: same search space, trials, seeds and cache.

Builds a feature cache from a small demo pipeline (or uses --cache), then runs the real
`aver tune` twice, once with tune.scheduler=asha and once with fifo (every trial runs all
epochs), and prints wall time, trial-epochs run and best validation UAR for both.

    python bench/tune.py --workdir /tmp/aver-bench-tune [--cache data/features]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.pipeline import TINY_PIPELINE, make_pipeline_repo  # noqa: E402


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(src)
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(var, None)
    return env


def build_cache(workdir: Path) -> Path:
    repo = make_pipeline_repo(workdir / "repo", TINY_PIPELINE)
    subprocess.run(
        ["dvc", "repro", "cache"],
        cwd=repo,
        env=_env(repo / "src"),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return repo / "data" / "features"


def sweep(workdir: Path, cache: Path, scheduler: str, args: argparse.Namespace) -> dict:
    run_dir = workdir / scheduler
    run_dir.mkdir(parents=True)
    params = {
        "cache": {"out": str(cache)},
        "train": {
            "batch_size": 8,
            "early_stop_patience": None,
            "seed": args.seed,
            "model": {"name": "late_fusion"},
        },
        "tune": {
            "out": str(run_dir / "reports"),
            "storage_path": str(run_dir / "ray"),
            "scheduler": scheduler,
            "search": "random",
            "num_samples": args.trials,
            "max_epochs": args.epochs,
            "grace_period": 1,
            "reduction_factor": 2,
            "max_concurrent": 2,
            "ray_num_cpus": 2,
            "space": {
                "train.lr": {"type": "loguniform", "low": 1e-4, "high": 3e-2},
                "train.model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
            },
        },
        "tracking": {
            "tracking_uri": f"sqlite:///{run_dir / 'mlruns.db'}",
            "artifact_root": str(run_dir / "mlartifacts"),
        },
    }
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params))
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "aver.cli", "tune", "--params", "params.yaml"],
        cwd=run_dir,
        env=_env(REPO / "src"),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t
    table = pd.read_csv(run_dir / "reports" / "results.csv")
    return {
        "scheduler": scheduler,
        "wall": wall,
        "epochs": int(table["epochs"].sum()),
        "best": float(table["val_uar"].max()),
        "trials": len(table),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/aver-bench-tune"))
    ap.add_argument("--cache", type=Path, default=None, help="an existing feature cache")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    cache = args.cache.resolve() if args.cache else build_cache(args.workdir)
    rows = [sweep(args.workdir, cache, s, args) for s in ("fifo", "asha")]
    print(
        f"\n`python bench/tune.py --trials {args.trials} --epochs {args.epochs}` "
        f"(late_fusion, seed {args.seed}, 2 concurrent trials)\n"
    )
    print("| scheduler | trials | trial-epochs run | wall s | best val UAR |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['scheduler']} | {r['trials']} | {r['epochs']} | {r['wall']:.1f} | "
            f"{r['best']:.3f} |"
        )
    fifo, asha = rows
    print(
        f"\nASHA: {fifo['wall'] / asha['wall']:.2f}x faster, "
        f"{asha['epochs'] / fifo['epochs']:.0%} of the epochs, "
        f"best val UAR {asha['best'] - fifo['best']:+.3f} vs full runs"
    )


if __name__ == "__main__":
    main()

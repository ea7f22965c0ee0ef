"""Every model on every fold of a feature cache: test accuracy / UAR per fold, mean and spread.

    python bench/demo_models.py --cache data/features [--models avtca msan ...] [--threads 1]
        [--jobs 2] [-S train.epochs=60 ...]

Uses the train stage's own code (prepare_fold -> fit with early stopping on validation UAR ->
best-epoch weights -> test split) with params.yaml plus the -S overrides, without MLflow or DVC,
so the numbers of all models come from identical data, folds and budgets. Models run in parallel
processes (`--jobs`), each on `--threads` torch threads. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

MODELS = ["audio_only", "video_only", "late_fusion", "msan", "avtca"]


def run_model(
    name: str, cache_path: str, params_path: str, overrides: dict, threads: int
) -> list[dict]:
    """Train and test `name` on every fold; one row of metrics per fold."""
    import torch

    from aver.config import load_params, with_overrides
    from aver.features.cache import FeatureCache
    from aver.features.loader import make_loader
    from aver.training.loop import fit_fold, predict
    from aver.training.metrics import accuracy, confusion_matrix, uar

    torch.set_num_threads(threads)
    params = with_overrides(load_params(params_path), {**overrides, "train.model.name": name})
    cache = FeatureCache(cache_path)
    rows = []
    for fold in range(cache.n_folds):
        start = time.perf_counter()
        setup, result = fit_fold(params, cache, fold)
        setup.model.load_state_dict(result.best_state)
        test = make_loader(cache, fold, "test", params.train.batch_size, train=False)
        pred = predict(setup.model, test)
        cm = confusion_matrix(pred.y_true, pred.y_pred, len(setup.classes))
        rows.append(
            {
                "fold": fold,
                "test_accuracy": accuracy(cm),
                "test_uar": uar(cm),
                "val_uar": result.best["val_uar"],
                "best_epoch": result.best_epoch,
                "seconds": time.perf_counter() - start,
            }
        )
        print(f"{name} fold {fold}: {rows[-1]}", flush=True)
    return rows


def table(results: dict[str, list[dict]]) -> str:
    lines = [
        "| model | test accuracy (mean ± std) | test UAR (mean ± std) | per fold accuracy "
        "| val UAR | best epochs | train+test s |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for name, rows in results.items():
        acc = np.array([r["test_accuracy"] for r in rows])
        u = np.array([r["test_uar"] for r in rows])
        lines.append(
            f"| {name} | {acc.mean():.3f} ± {acc.std():.3f} | {u.mean():.3f} ± {u.std():.3f} "
            f"| {' / '.join(f'{a:.3f}' for a in acc)} "
            f"| {np.mean([r['val_uar'] for r in rows]):.3f} "
            f"| {' / '.join(str(r['best_epoch']) for r in rows)} "
            f"| {sum(r['seconds'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="data/features")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-S", dest="sets", action="append", default=[], help="key=value override")
    args = ap.parse_args()
    overrides = {}
    for item in args.sets:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    cache, params = str(Path(args.cache).resolve()), str(Path(args.params).resolve())
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {
            m: pool.submit(run_model, m, cache, params, overrides, args.threads)
            for m in args.models
        }
        results = {m: f.result() for m, f in futures.items()}
    print(table(results))


if __name__ == "__main__":
    main()

"""Every model on every fold and seed of a feature cache; choices on validation, test reported.

    python bench/demo_models.py --cache data/features [--models avtca msan ...] [--seeds 0 1]
        [--jobs 2] [--threads 1] [--json reports/demo_models.json [--resume]] [--merge a.json ...]
        [--default msan] [-S train.epochs=60 ...]

Uses the train stage's own code (prepare_fold -> fit with early stopping on validation UAR ->
the weights train.select keeps -> validation and test splits) with params.yaml plus the -S
overrides, without MLflow or DVC, so every model gets identical data, folds, seeds and budget.
Each (model, fold, seed) run is one job; `--jobs` processes run them, each on `--threads` torch
threads; runs go seed-major (every model's first seed first). `--resume` skips the runs
already in the `--json` file. `--merge` prints the tables of earlier `--json` files.

Decisions use validation only: the models are ranked by mean validation UAR over folds x seeds,
and the default (`--default`) is compared with the best other model by validation UAR, paired
on the same (fold, seed) runs (bench/compare.py's paired_stats: paired t interval, sign-flip
p-value). Test metrics are computed once per run and only reported: mean ± std over folds x
seeds, a Student t 95% interval over the runs and a bootstrap 95% interval over test clips
(aver.evaluation.intervals), and the same paired comparison on test for reference.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from compare import paired_stats, summary_line

MODELS = ["audio_only", "video_only", "late_fusion", "msan", "avtca"]


def run_one(
    name: str,
    fold: int,
    seed: int,
    cache_path: str,
    params_path: str,
    overrides: dict,
    threads: int,
) -> dict[str, Any]:
    """Train `name` on one (fold, seed); validation and test metrics and test predictions."""
    import torch

    from aver.config import load_params, with_overrides
    from aver.features.cache import FeatureCache
    from aver.features.loader import make_loader
    from aver.resolution import resolve
    from aver.training.folds import fit_fold, with_seed
    from aver.training.loop import predict
    from aver.training.metrics import classification_metrics

    torch.set_num_threads(threads)
    params = with_overrides(load_params(params_path), {**overrides, "train.model.name": name})
    params = with_seed(resolve(params).params, seed)
    cache = FeatureCache(cache_path)
    start = time.perf_counter()
    setup, result = fit_fold(params, cache, fold)
    setup.model.load_state_dict(result.best_state)
    row: dict[str, Any] = {
        "model": name,
        "fold": fold,
        "seed": seed,
        "kept_epoch": result.best_epoch,
        "n_classes": len(setup.classes),
    }
    test = make_loader(cache, fold, "test", params.train.batch_size, train=False)
    for split, loader in (("val", setup.val_loader), ("test", test)):
        pred = predict(setup.model, loader)
        m = classification_metrics(pred.y_true, pred.y_pred, len(setup.classes))
        row.update({f"{split}_{k}": float(m[k]) for k in ("accuracy", "uar")})
        if split == "test":
            row["test_y_true"] = [int(v) for v in pred.y_true]
            row["test_y_pred"] = [int(v) for v in pred.y_pred]
    row["seconds"] = time.perf_counter() - start
    print(
        f"{name} fold {fold} seed {seed}: val UAR {row['val_uar']:.3f}, "
        f"test UAR {row['test_uar']:.3f}, kept epoch {row['kept_epoch']}, {row['seconds']:.0f} s",
        flush=True,
    )
    return row


def _ms(x: np.ndarray) -> str:
    return f"{x.mean():.3f} ± {x.std(ddof=1) if x.size > 1 else 0.0:.3f}"


def _ci(pair: Any) -> str:
    return "n/a" if pair is None else f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def summarise(rows: list[dict[str, Any]], n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """Per model: validation and test mean, std (ddof=1), t interval over runs, test bootstrap."""
    from aver.evaluation.intervals import bootstrap_interval, t_interval

    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == name), key=lambda r: (r["fold"], r["seed"]))
        runs = [(np.array(r["test_y_true"]), np.array(r["test_y_pred"])) for r in mine]
        s: dict[str, Any] = {"runs": len(mine), "rows": mine}
        for key in ("val_uar", "test_uar", "test_accuracy"):
            x = np.array([r[key] for r in mine])
            s[key] = x
            s[f"{key}_t95"] = t_interval(x)
        k = mine[0]["n_classes"]
        for metric in ("uar", "accuracy"):
            s[f"test_{metric}_boot95"] = bootstrap_interval(runs, k, metric, n_boot=n_boot)
        s["seconds"] = sum(r["seconds"] for r in mine)
        out[name] = s
    return out


def tables(rows: list[dict[str, Any]], default: str) -> str:
    """Markdown: validation table (decides), test table (reports), paired comparison."""
    summ = summarise(rows)
    order = sorted(summ, key=lambda n: -summ[n]["val_uar"].mean())
    lines = [
        "Validation (decides; models ranked by mean val UAR over folds x seeds):",
        "",
        "| rank | model | runs | val UAR mean ± std | val UAR 95% t interval | kept epochs |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for i, n in enumerate(order, 1):
        s = summ[n]
        epochs = " / ".join(str(r["kept_epoch"]) for r in s["rows"])
        lines.append(
            f"| {i} | {n} | {s['runs']} | {_ms(s['val_uar'])} | {_ci(s['val_uar_t95'])} "
            f"| {epochs} |"
        )
    lines += [
        "",
        "Test (reported once per run, never used for a choice):",
        "",
        "| model | test UAR mean ± std | 95% t (runs) | 95% bootstrap (clips) "
        "| test accuracy mean ± std | 95% t (runs) | 95% bootstrap (clips) "
        "| per run test UAR (fold.seed) | train+test s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for n in order:
        s = summ[n]
        per = " / ".join(f"{r['fold']}.{r['seed']}: {r['test_uar']:.3f}" for r in s["rows"])
        lines.append(
            f"| {n} | {_ms(s['test_uar'])} | {_ci(s['test_uar_t95'])} "
            f"| {_ci(s['test_uar_boot95'])} | {_ms(s['test_accuracy'])} "
            f"| {_ci(s['test_accuracy_t95'])} | {_ci(s['test_accuracy_boot95'])} | {per} "
            f"| {s['seconds']:.0f} |"
        )
    others = [n for n in order if n != default]
    if default in summ and others:
        alt = others[0]
        a_rows = {(r["fold"], r["seed"]): r for r in summ[default]["rows"]}
        b_rows = {(r["fold"], r["seed"]): r for r in summ[alt]["rows"]}
        keys = sorted(a_rows.keys() & b_rows.keys())
        lines += [
            "",
            f"Paired comparison, A = {default} (default) vs B = {alt} (best other model by "
            f"validation UAR), on the {len(keys)} shared (fold, seed) runs:",
            "",
        ]
        for split in ("val", "test"):
            st = paired_stats(
                [a_rows[k][f"{split}_uar"] for k in keys],
                [b_rows[k][f"{split}_uar"] for k in keys],
            )
            lines.append("- " + summary_line(st, "uar", split))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="data/features")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="default: train seeds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", default=None, help="write every run's row here")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --json")
    ap.add_argument("--merge", nargs="+", default=None, help="tables of these --json files")
    ap.add_argument("--default", default="msan", help="the model compared with the best other")
    ap.add_argument("-S", dest="sets", action="append", default=[], help="key=value override")
    args = ap.parse_args()
    if args.merge:
        rows = [r for p in args.merge for r in json.loads(Path(p).read_text())["rows"]]
        print(tables(rows, args.default))
        return
    overrides = {}
    for item in args.sets:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    from aver.config import load_params, with_overrides
    from aver.features.cache import FeatureCache

    base = with_overrides(load_params(args.params), overrides)
    seeds = args.seeds or base.train.run_seeds()
    cache, params = str(Path(args.cache).resolve()), str(Path(args.params).resolve())
    n_folds = FeatureCache(cache).n_folds
    rows: list[dict[str, Any]] = []
    if args.resume and args.json and Path(args.json).exists():
        rows = json.loads(Path(args.json).read_text())["rows"]  # runs already done: kept
    done = {(r["model"], r["fold"], r["seed"]) for r in rows}
    # seed-major: every model's first seed before any second seed (partial runs stay comparable)
    jobs = [(m, f, s) for s in seeds for m in args.models for f in range(n_folds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_one, m, f, s, cache, params, overrides, args.threads)
            for m, f, s in jobs
            if (m, f, s) not in done
        ]
        for fut in as_completed(futures):
            rows.append(fut.result())
            if args.json:  # keep what finished if a later run fails or is stopped
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                doc = {"overrides": args.sets, "seeds": seeds, "rows": rows}
                Path(args.json).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    print(tables(rows, args.default))


if __name__ == "__main__":
    main()

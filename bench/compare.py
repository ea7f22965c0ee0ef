"""Paired comparison of two configurations: is B - A larger than the seed-and-fold noise?

    python bench/compare.py --cache data/features --a train.model.name=msan \\
        --b train.model.name=avtca [-S train.epochs=5 ...] [--folds 0 1] [--seeds 0 1 2] \\
        [--metric uar] [--split val] [--threads 1] [--json reports/compare.json]

Both configurations are params.yaml plus the common `-S` overrides plus their own `--a`/`--b`
overrides (each repeatable, dotted key=YAML value). Every (fold, seed) pair is trained with both,
on the same feature cache, through the train stage's own code (presets and tuned params resolved
as `aver train` does, prepare_fold -> fit with early stopping on validation UAR -> best weights),
without MLflow or DVC. Folds default to train.folds, seeds to train.seeds (null: [train.seed]).

The decision statistic is the per-pair difference B - A of `--metric` on the **validation** split
(`--split val`, the default): its mean, a paired Student t 95% interval and a two-sided sign-flip
permutation p-value (exact over all 2^n sign patterns up to n = 16 pairs). The difference counts
as larger than the noise when the interval excludes 0. `--split test` computes the same on the
test split for reporting only: choosing a configuration on it would leak the test speakers into
model selection. Prints a markdown table of the pairs and the summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

METRICS = ("uar", "accuracy", "macro_f1")
EXACT_UP_TO = 16  # pairs: enumerate all 2^n sign flips up to this, else sample


def paired_stats(
    a: Sequence[float],
    b: Sequence[float],
    *,
    level: float = 0.95,
    n_perm: int = 20000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired statistics of d = b - a: mean, std (ddof=1), Student t interval of the mean
    (None for fewer than two pairs), sign-flip p-value of mean(d) = 0, and whether the interval
    excludes 0 (`larger_than_noise`)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"need two equally long non-empty lists, got {x.shape} and {y.shape}")
    d = y - x
    n, mean = d.size, float(d.mean())
    std = float(d.std(ddof=1)) if n > 1 else float("nan")
    interval = None
    if n > 1:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n))
        interval = [mean - half, mean + half]
    p = sign_flip_p(d, n_perm=n_perm, seed=seed)
    return {
        "n": int(n),
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "mean_diff": mean,
        "std_diff": std,
        "ci": interval,
        "level": level,
        "p_value": p,
        "min_p": 2.0 / 2**n if n <= EXACT_UP_TO else 1.0 / (n_perm + 1),
        "larger_than_noise": bool(interval is not None and (interval[0] > 0 or interval[1] < 0)),
    }


def sign_flip_p(d: np.ndarray, *, n_perm: int = 20000, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0 against random sign flips of the paired differences."""
    d = np.asarray(d, dtype=np.float64)
    observed = abs(d.mean())
    if d.size <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        flipped = np.abs(signs @ d / d.size)
        return float(np.mean(flipped >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_perm, d.size))
    flipped = np.abs(signs @ d / d.size)
    return float((1 + np.sum(flipped >= observed - 1e-12)) / (n_perm + 1))


def train_pair_member(params: Any, cache: Any, fold: int, seed: int) -> dict[str, float]:
    """Train one (fold, seed) with `params` as the train stage does; val and test metrics."""
    from aver.features.loader import make_loader
    from aver.training.folds import fit_fold, with_seed
    from aver.training.loop import predict, resolve_device
    from aver.training.metrics import classification_metrics

    params = with_seed(params, seed)
    cfg = params.train
    device = resolve_device(cfg.device)
    setup, res = fit_fold(params, cache, fold, device=device)
    setup.model.load_state_dict(res.best_state)
    out: dict[str, float] = {"best_epoch": float(res.best_epoch)}
    test = make_loader(cache, fold, "test", cfg.batch_size, train=False)
    for split, loader in (("val", setup.val_loader), ("test", test)):
        pred = predict(setup.model, loader, device, amp=cfg.amp)
        m = classification_metrics(pred.y_true, pred.y_pred, len(setup.classes))
        out.update({f"{split}_{k}": float(m[k]) for k in METRICS})
    return out


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"override {item!r}: expected dotted.key=value")
        out[key] = yaml.safe_load(value)
    return out


def table(pairs: list[dict[str, Any]], metric: str, split: str) -> str:
    other = "test" if split == "val" else "val"
    lines = [
        f"| fold | seed | A {split} {metric} | B {split} {metric} | B - A "
        f"| A {other} {metric} | B {other} {metric} | A / B s |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in pairs:
        a, b = p["a"], p["b"]
        k, o = f"{split}_{metric}", f"{other}_{metric}"
        lines.append(
            f"| {p['fold']} | {p['seed']} | {a[k]:.4f} | {b[k]:.4f} | {b[k] - a[k]:+.4f} "
            f"| {a[o]:.4f} | {b[o]:.4f} | {a['seconds']:.0f} / {b['seconds']:.0f} |"
        )
    return "\n".join(lines)


def summary_line(s: dict[str, Any], metric: str, split: str) -> str:
    ci = "n/a (one pair)" if s["ci"] is None else f"[{s['ci'][0]:+.4f}, {s['ci'][1]:+.4f}]"
    verdict = (
        "yes: the interval excludes 0"
        if s["larger_than_noise"]
        else "no: the interval contains 0 (or one pair only)"
    )
    note = "" if split == "val" else " (test split: report only, do not select on it)"
    return (
        f"B - A on {split} {metric} over {s['n']} (fold, seed) pairs{note}: mean "
        f"{s['mean_diff']:+.4f} (A {s['mean_a']:.4f}, B {s['mean_b']:.4f}), "
        f"std {s['std_diff']:.4f}, "
        f"{round(100 * s['level'])}% paired t interval {ci}, sign-flip p = {s['p_value']:.4f} "
        f"(smallest possible {s['min_p']:.4f}). Larger than the noise: {verdict}."
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cache", default=None, help="default: cache.out of the params")
    ap.add_argument("--a", dest="a", action="append", default=[], help="A: key=value override")
    ap.add_argument("--b", dest="b", action="append", default=[], help="B: key=value override")
    ap.add_argument("-S", dest="sets", action="append", default=[], help="override for both")
    ap.add_argument("--folds", nargs="+", default=None, help="default: train.folds; or `all`")
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="default: train.seeds")
    ap.add_argument("--metric", choices=METRICS, default="uar")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if not args.a and not args.b:
        ap.error("give --a and/or --b overrides: the two configurations would be identical")

    import torch

    from aver.config import load_params, with_overrides
    from aver.features.cache import FeatureCache
    from aver.resolution import resolve
    from aver.training.folds import resolve_folds

    torch.set_num_threads(args.threads)
    common = with_overrides(load_params(args.params), parse_sets(args.sets), "-S")
    configs = {
        name: resolve(with_overrides(common, parse_sets(sets), f"--{name}")).params
        for name, sets in (("a", args.a), ("b", args.b))
    }
    cache = FeatureCache(args.cache or common.cache.out)
    spec = common.train.folds if args.folds is None else args.folds
    spec = "all" if spec in ("all", ["all"]) else spec
    folds = resolve_folds(spec, cache.n_folds, "--folds")
    seeds = args.seeds or common.train.run_seeds()
    pairs: list[dict[str, Any]] = []
    for fold in folds:
        for seed in seeds:
            pair: dict[str, Any] = {"fold": fold, "seed": seed}
            for name, params in configs.items():
                start = time.perf_counter()
                pair[name] = train_pair_member(params, cache, fold, seed)
                pair[name]["seconds"] = time.perf_counter() - start
            pairs.append(pair)
            key = f"{args.split}_{args.metric}"
            print(
                f"fold {fold} seed {seed}: A {pair['a'][key]:.4f}, B {pair['b'][key]:.4f}",
                file=sys.stderr,
                flush=True,
            )
    key = f"{args.split}_{args.metric}"
    result = paired_stats([p["a"][key] for p in pairs], [p["b"][key] for p in pairs])
    doc = {
        "a": args.a,
        "b": args.b,
        "common": args.sets,
        "folds": folds,
        "seeds": seeds,
        "metric": args.metric,
        "split": args.split,
        "pairs": pairs,
        "stats": result,
    }
    print(f"A: {' '.join(args.a) or '(params)'}; B: {' '.join(args.b) or '(params)'}\n")
    print(table(pairs, args.metric, args.split))
    print()
    print(summary_line(result, args.metric, args.split))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return doc


if __name__ == "__main__":
    main()

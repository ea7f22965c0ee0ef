"""95% intervals for test metrics: across runs (folds x seeds) and over test clips (bootstrap).

- Across runs: mean +- t(0.975, n-1) * std / sqrt(n) over the per-run values (Student t; needs
  two runs or more), clipped to [0, 1] as the metrics are.
- Over test clips: percentile bootstrap of the mean-over-runs metric, resampling each run's
  test clips with replacement (within the run), `n_boot` times from a fixed seed. It shows how
  much the number would move with other test clips of the same speakers and conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from aver.training.metrics import accuracy, confusion_matrix, macro_f1, uar

METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "accuracy": accuracy,
    "uar": uar,
    "macro_f1": macro_f1,
}


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean of `values` (None for fewer than two), within [0, 1]."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(max(0.0, x.mean() - half)), float(min(1.0, x.mean() + half))


def bootstrap_interval(
    runs: Sequence[tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    metric: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the mean over `runs` ((y_true, y_pred) each) of `metric`."""
    fn = METRICS[metric]
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot, dtype=np.float64)
    for b in range(n_boot):
        scores = []
        for y_true, y_pred in runs:
            pick = rng.integers(0, len(y_true), len(y_true))
            scores.append(fn(confusion_matrix(y_true[pick], y_pred[pick], n_classes)))
        draws[b] = np.nanmean(scores)
    lo, hi = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def metric_intervals(
    runs: Sequence[tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, list[float] | None]]:
    """{metric: {"runs": [lo, hi] or None, "bootstrap": [lo, hi]}} for accuracy, uar, macro_f1."""
    out: dict[str, dict[str, list[float] | None]] = {}
    for name, fn in METRICS.items():
        per_run = [fn(confusion_matrix(t, p, n_classes)) for t, p in runs]
        across = t_interval(per_run)
        boot = bootstrap_interval(runs, n_classes, name, n_boot=n_boot, seed=seed)
        out[name] = {"runs": list(across) if across else None, "bootstrap": list(boot)}
    return out

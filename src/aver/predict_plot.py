"""The `aver predict --timeline` plot: emotion probabilities over the video (PNG, atomic).

A long video has more windows than a plot can show: past `MAX_STEPS` windows, consecutive
windows are averaged into bins (`bin_windows`) and the title says so; the JSON keeps them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from aver.training.plots import save_figure

MAX_STEPS = 120  # windows drawn one by one; more are averaged into this many bins at most


def bin_windows(
    centres: np.ndarray, probs: np.ndarray, max_steps: int = MAX_STEPS
) -> tuple[np.ndarray, np.ndarray, int]:
    """(centres, probs, k): every k consecutive windows averaged (k = 1: unchanged), so that at
    most `max_steps` remain; the last bin may hold fewer windows."""
    centres = np.asarray(centres, np.float64)
    probs = np.asarray(probs, np.float64)
    k = max(1, -(-len(centres) // max_steps))
    if k == 1:
        return centres, probs, 1
    edges = np.arange(0, len(centres), k)
    counts = np.diff(np.append(edges, len(centres)))
    mean_c = np.add.reduceat(centres, edges) / counts
    mean_p = np.add.reduceat(probs, edges, axis=0) / counts[:, None]
    return mean_c, mean_p, k


def timeline_steps(
    centres: np.ndarray, probs: np.ndarray, duration_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """x positions and (len(x), C) probabilities of a step plot over [0, duration_s].

    Each window's probabilities hold from the midpoint with the previous window's centre to the
    midpoint with the next one; the first starts at 0 and the last ends at the clip's end.
    """
    centres = np.asarray(centres, np.float64)
    probs = np.asarray(probs, np.float64)
    end = max(float(duration_s), float(centres[-1]))
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [end]])
    x = np.repeat(edges, 2)[1:-1]  # [e0, e1, e1, e2, e2, ... en]
    y = np.repeat(probs, 2, axis=0)
    return x, y


def timeline_png(
    centres: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    target: str | Path,
    *,
    window_s: float,
    duration_s: float,
    title: str = "",
    max_steps: int = MAX_STEPS,
) -> Path:
    """Stacked areas of per-window class probabilities against time (window centres marked;
    past `max_steps` windows, bins of k windows averaged, said in the title)."""
    centres, probs, k = bin_windows(centres, probs, max_steps)
    x, y = timeline_steps(centres, probs, duration_s)
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 4 + duration_s / 4)), 3.4))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    colors = [cmap(i) for i in range(len(classes))]  # the first entries of a listed map
    ax.stackplot(x, y.T, labels=list(classes), colors=colors, alpha=0.85)
    if len(centres) <= max_steps // 2:
        for c in np.asarray(centres):
            ax.axvline(float(c), color="white", lw=0.5, alpha=0.6)
    ax.set_xlim(0, max(float(duration_s), float(x[-1])))
    ax.set_ylim(0, 1)
    step = f"a {window_s:g} s window" if k == 1 else f"the mean of {k} windows of {window_s:g} s"
    ax.set_xlabel(f"time (s); each step: {step}, 1 s hop")
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if k > 1:
        title = f"{title} ({len(centres)} bins of {k} windows)" if title else f"bins of {k} windows"
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, target)

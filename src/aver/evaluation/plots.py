"""Evaluation plots: the test confusion matrix (PNG) and per-class recall bars."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from aver.training.plots import confusion_png, plt, save_figure

__all__ = ["confusion_png", "recall_bars_png"]


def recall_bars_png(
    recall: Mapping[str, float | None], target: str | Path, title: str = ""
) -> Path:
    """Horizontal bar per class; absent classes drawn empty."""
    names = list(recall)
    values = [np.nan if (v := recall[c]) is None else float(v) for c in names]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.5))
    ax.barh(range(len(names)), np.nan_to_num(values), color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall")
    ax.invert_yaxis()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, target)

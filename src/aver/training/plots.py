"""Training plots (PNG, written atomically): learning curves and confusion matrices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from aver.io.atomic import atomic_path


def curves_png(
    histories: Mapping[str, Sequence[Mapping[str, float]]], target: str | Path, title: str = ""
) -> Path:
    """Loss, UAR and lr per epoch; one line per history (e.g. per fold)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for label, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        axes[0].plot(ep, [h["train_loss"] for h in hist], label=f"{label} train")
        axes[0].plot(ep, [h["val_loss"] for h in hist], "--", label=f"{label} val")
        axes[1].plot(ep, [h.get("train_uar", np.nan) for h in hist], label=f"{label} train")
        axes[1].plot(ep, [h["val_uar"] for h in hist], "--", label=f"{label} val")
        axes[2].plot(ep, [h["lr"] for h in hist], label=label)
    for ax, name in zip(axes, ("loss", "UAR", "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, target)


def confusion_png(
    cm: np.ndarray, classes: Sequence[str], target: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (actual rows, predicted columns) with counts."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    side = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{cm[i, j]}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, target)


def save_figure(fig: plt.Figure, target: str | Path) -> Path:
    target = Path(target)
    try:
        with atomic_path(target, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return target

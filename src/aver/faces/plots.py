"""QA plots of the align stage: a contact sheet of aligned faces per class, detection rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aver.io.atomic import atomic_path, write_csv


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def middle_face(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The detected frame nearest the clip's middle (or the middle frame if none was detected)."""
    detected = np.asarray(arrays["detected"])
    mid = len(detected) // 2
    hits = np.flatnonzero(detected)
    i = int(hits[np.argmin(np.abs(hits - mid))]) if len(hits) else mid
    return np.asarray(arrays["frames"][i])


def contact_sheet(
    faces_by_class: Mapping[str, Sequence[np.ndarray]], out_png: str | Path, per_class: int = 8
) -> np.ndarray:
    """One row per class of up to `per_class` faces (S, S, 3); writes the PNG, returns the grid."""
    classes = list(faces_by_class)
    size = next((f.shape[0] for fs in faces_by_class.values() for f in fs), 64)
    per_class = max(1, min(per_class, max((len(f) for f in faces_by_class.values()), default=1)))
    grid = np.full((max(1, len(classes)) * size, per_class * size, 3), 255, np.uint8)
    for r, cls in enumerate(classes):
        for c, face in enumerate(list(faces_by_class[cls])[:per_class]):
            grid[r * size : (r + 1) * size, c * size : (c + 1) * size] = face
    plt = _figure()
    fig, ax = plt.subplots(figsize=(1.2 * per_class + 1.5, 1.2 * max(1, len(classes)) + 0.5))
    ax.imshow(grid)
    ax.set_xticks([])
    ax.set_yticks([(r + 0.5) * size for r in range(len(classes))], classes)
    ax.set_title("aligned faces (middle frame) per class")
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return grid


def detection_rate_plot(
    rates: Sequence[float],
    out_csv: str | Path,
    out_png: str | Path,
    threshold: float,
    bins: int = 20,
) -> pd.DataFrame:
    """Histogram of per-clip detection rates: CSV (bin_start, bin_end, clips) and a PNG."""
    counts, edges = np.histogram(np.asarray(rates, float), bins=bins, range=(0.0, 1.0))
    table = pd.DataFrame(
        {"bin_start": edges[:-1].round(4), "bin_end": edges[1:].round(4), "clips": counts}
    )
    write_csv(out_csv, table)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="black")
    ax.axvline(threshold, color="red", linestyle="--", label=f"min_detection_rate={threshold}")
    ax.set_xlabel("face detection rate per clip")
    ax.set_ylabel("clips")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return table

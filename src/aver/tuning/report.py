"""Sweep outputs: the results table, the best config and a scatter plot per searched key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from aver.errors import AverError
from aver.io.atomic import atomic_path, write_csv, write_text
from aver.tuning.space import plain

METRIC = "val_uar"


def results_table(results: Any, keys: list[str]) -> pd.DataFrame:
    """One row per trial: searched values, best and last val UAR, epochs run, node, error."""
    rows = []
    for i, res in enumerate(results):
        hist = res.metrics_dataframe if res.metrics_dataframe is not None else pd.DataFrame()
        best = float(hist[METRIC].max()) if METRIC in hist else float("nan")
        metrics = res.metrics or {}
        rows.append(
            {
                "trial": i,
                "trial_id": metrics.get("trial_id", ""),
                **{k: plain(res.config.get(k)) for k in keys},
                METRIC: best,
                "last_val_uar": metrics.get(METRIC, float("nan")),
                "epochs": int(hist["epoch"].max()) if "epoch" in hist else 0,
                "node": metrics.get("node", ""),
                "error": "" if res.error is None else str(res.error).splitlines()[0][:200],
            }
        )
    return pd.DataFrame(rows)


def best_config(table: pd.DataFrame, keys: list[str]) -> dict[str, Any]:
    ok = table[table["error"] == ""].dropna(subset=[METRIC])
    if ok.empty:
        raise AverError(
            "every trial failed; no best config",
            fix="see the error column of reports/tune/results.csv and Ray's logs",
        )
    row = ok.sort_values([METRIC, "trial"], ascending=[False, True]).iloc[0]
    return {k: plain(row[k]) for k in keys}


def write_outputs(out: Path, table: pd.DataFrame, best: dict[str, Any]) -> None:
    """best_params.yaml (read by train when train.use_tuned), results.csv and plots/sweep.png."""
    score = float(table[METRIC].max())
    header = (
        f"# Best trial of the sweep by validation UAR ({score:.4f}); train.use_tuned reads it.\n"
    )
    write_text(out / "best_params.yaml", header + yaml.safe_dump(best, sort_keys=True))
    write_csv(out / "results.csv", table)
    _scatter(out / "plots" / "sweep.png", table, list(best))


def _scatter(path: Path, table: pd.DataFrame, keys: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(keys))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, key in zip(axes[0], keys or [""]):
        col = table[key] if key in table else table["trial"]
        numeric = pd.api.types.is_numeric_dtype(col)
        xs = col if numeric else col.astype(str)
        ax.scatter(xs, table[METRIC], c=table["epochs"], cmap="viridis")
        if numeric and key.endswith(("lr", "weight_decay")):
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("best val UAR")
    fig.suptitle("Sweep: each point is a trial (colour = epochs run before ASHA stopped it)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)

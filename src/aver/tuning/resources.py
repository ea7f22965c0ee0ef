"""Per-trial resources: a GPU (or a fraction) when the cluster has GPUs, CPUs otherwise."""

from __future__ import annotations

from aver.config import TuneConfig


def trial_resources(cfg: TuneConfig, cluster: dict[str, float]) -> dict[str, float]:
    """Resources one trial asks for, from the detected cluster resources (not hand-edited)."""
    gpus = float(cluster.get("GPU", 0.0))
    cpus = min(cfg.cpus_per_trial, float(cluster.get("CPU", cfg.cpus_per_trial)))
    if gpus > 0 and cfg.gpus_per_trial > 0:
        return {"cpu": cpus, "gpu": min(cfg.gpus_per_trial, gpus)}
    return {"cpu": cpus}


def loader_workers(cpus: float) -> int:
    """DataLoader workers for a trial: its CPUs less the one that runs the loop."""
    return max(0, int(cpus) - 1)

"""A tiny feature cache and a params file for sweeps run as `aver tune` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.features.conftest import build_cache, standard_clips

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def tiny_cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tune-cache")
    return build_cache(root, standard_clips(speakers=6, per_class=2))


def write_params(work: Path, cache: Path, **tune) -> Path:
    """params.yaml for a small, fast sweep over the real training function."""
    raw = {
        "data": {"dataset": "demo"},
        "cache": {"out": str(cache)},
        "train": {
            "batch_size": 4,
            "model": {"name": "late_fusion", "d_model": 16, "heads": 2, "layers": 1},
            "early_stop_patience": None,
            "use_tuned": True,  # with false, tune starts no sweep
        },
        "tune": {
            "out": str(work / "reports" / "tune"),
            "storage_path": str(work / "ray"),
            "num_samples": 3,
            "max_epochs": 2,
            "max_concurrent": 2,
            "ray_num_cpus": 2,
            "space": {
                "train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                "train.weight_decay": {"type": "choice", "values": [0.0, 0.01]},
            },
            **tune,
        },
        "tracking": {
            "tracking_uri": f"sqlite:///{work / 'mlruns.db'}",
            "artifact_root": str(work / "mlartifacts"),
        },
    }
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def tune_cmd(params: Path, *, faults: bool = False) -> list[str]:
    """`aver tune`; with `faults`, the test-only entry that injects trial failures
    (tests/tuning/faults.py: needs the repository root on PYTHONPATH, see `fault_env`)."""
    entry = "tests.tuning.faults" if faults else "aver.cli"
    return [sys.executable, "-m", entry, *([] if faults else ["tune"]), "--params", str(params)]


def fault_env(env: dict[str, str], **faults: str) -> dict[str, str]:
    """`env` plus the fault variables and the repository root on PYTHONPATH."""
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return {**env, **faults, "PYTHONPATH": path}


def run_tune(
    params: Path, env: dict[str, str], timeout: float = 600, *, faults: bool = False
) -> str:
    proc = subprocess.run(
        tune_cmd(params, faults=faults),
        cwd=params.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"aver tune failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr

"""Whole-pipeline runs: a throw-away git repo copy of this checkout, and dvc in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# A small demo configuration: the same code paths as the default, sized for tests.
TINY = {
    "data": {"demo": {"speakers": 3, "clips_per_class": 1, "duration_s": 1.0}},
}

# The whole pipeline, small enough for CI on 2 cores yet large enough to learn the demo classes:
# 12 speakers (from fewer the face cue does not carry over to new speakers), a normal and a
# strong clip per class (96 clips; fold 0 tests on 4 unseen speakers), expressions 1.5x the
# default so that 60 epochs on ~50 training clips learn the faces (default strength: 0.72 test
# accuracy, happy/sad at 0.5; 1.5x: 0.84 on this split).
TINY_PIPELINE = {
    "data": {"demo": {"speakers": 12, "clips_per_class": 2, "duration_s": 1.6, "expression": 1.5}},
    "cache": {"window_s": 1.6},
    # grace_period = max_epochs: ASHA stops no trial early, so the best config (which train
    # uses: use_tuned) does not depend on the order trials report in, and reruns match
    "tune": {
        "num_samples": 2,
        "max_epochs": 2,
        "grace_period": 2,
        "max_concurrent": 2,
        "ray_num_cpus": 2,
    },
    # use_tuned: the sweep runs (with false, tune writes NOT_TUNED.txt and starts no sweep)
    # modality_dropout: the model also scores a clip from one modality (tests/test_predict.py)
    "train": {"epochs": 60, "batch_size": 8, "use_tuned": True, "modality_dropout": 0.3},
}


def _tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line and (repo / line).is_file()]


def deep_update(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def make_pipeline_repo(dest: Path, overrides: dict | None = None) -> Path:
    """Copy this checkout's files into `dest`, apply params overrides, git init + commit."""
    for rel in _tracked_files(REPO):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    params_path = dest / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params_path.write_text(yaml.safe_dump(deep_update(params, overrides or {}), sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def interpreter_env() -> dict[str, str]:
    """This process's env with its interpreter's bin dir first on PATH (this venv's dvc, aver)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def audio_folder_params(csv: Path) -> dict:
    """A folder dataset of WAV clips (`csv`) through the audio-only model: one fold, one epoch,
    no sweep (the e2e folder-input and audio-only repos)."""
    return {
        "data": {"dataset": "folder", "folder": {"csv": str(csv)}},
        "cache": {"window_s": 1.0},
        "train": {
            "model": {"name": "audio_only"},
            "epochs": 1,
            "batch_size": 4,
            "folds": [0],
            "use_tuned": False,
        },
    }


def pipeline_env(base_env: dict[str, str], repo: Path) -> dict[str, str]:
    """Env for stage commands in a copy: its own src on PYTHONPATH, the venv on PATH."""
    env = dict(base_env)
    env["PYTHONPATH"] = str(repo / "src")
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(var, None)  # the embedded defaults: sqlite store in the repo, local Ray
    return env


def dvc(repo: Path, env: dict[str, str], *args: str, timeout: float = 900) -> str:
    """Run a dvc command in `repo`; fail the test with its output when it fails."""
    proc = subprocess.run(
        ["dvc", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout + proc.stderr


def aver_predict(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python -m aver.cli predict ARGS` in `repo` (its stdout and stderr captured)."""
    return subprocess.run(
        [sys.executable, "-m", "aver.cli", "predict", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

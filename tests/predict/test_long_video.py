"""A 10-minute video through `aver predict` in a child process: bounded memory, every window."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aver.inference import window_starts
from tests.support.model_files import concat, demo_clips, write_model_file

PEAK_LIMIT_MB = 2048


def _measured(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run `cmd` under a fresh interpreter: (exit code, stdout, stderr, peak RSS MiB of it)."""
    probe = (
        "import json, resource, subprocess, sys;"
        f"r = subprocess.run({cmd!r}, capture_output=True, text=True);"
        "m = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024;"
        "print(json.dumps([r.returncode, r.stdout, r.stderr, m]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    rc, stdout, stderr, peak = json.loads(out.stdout)
    return rc, stdout, stderr, peak


@pytest.mark.slow
def test_ten_minutes_in_bounded_memory(tmp_path, venv_env):
    """A talking face looped to 10 minutes (128 px; the model's card samples faces at 5 fps and
    detects on every 10th): every window is in the JSON, the plot is binned, and the child's
    peak RSS stays under 2 GB."""
    clip = demo_clips(tmp_path, duration_s=3.0, size=128)["happy"]
    video = concat([clip], tmp_path / "ten_minutes.mp4", loop=200)
    model = write_model_file(
        tmp_path / "model.pt",
        align={"sample_fps": 5.0, "detect_every": 10},
        cache={"video_fps": 5.0},
    )
    png = tmp_path / "timeline.png"
    cmd = [sys.executable, "-m", "aver.cli", "predict", str(video), "--model", str(model)]
    rc, out, err, peak = _measured([*cmd, "--json", "--timeline", str(png)], venv_env)
    assert rc == 0, err[-3000:]
    doc = json.loads(out)
    assert doc["duration_s"] == pytest.approx(600.0, abs=0.5)
    assert len(doc["windows"]) == len(window_starts(doc["duration_s"], 2.0)) == 599
    assert all(w["probabilities"] is not None for w in doc["windows"])
    assert doc["modalities"] == ["audio", "video"]
    assert png.stat().st_size > 0
    assert peak < PEAK_LIMIT_MB, f"peak RSS {peak:.0f} MiB"
    print(f"peak RSS {peak:.0f} MiB")

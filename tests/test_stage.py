"""The stage runner: SIGTERM is handled like Ctrl-C (cleanup runs, exit code 143)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A stage that marks when it started, then waits; its `finally` stands for the cleanup that
# context managers do (ending MLflow runs, keeping checkpoints).
STAGE = """
import sys, time
from pathlib import Path
from aver.stage import main

work = Path(sys.argv[1])

def run(params):
    try:
        (work / "started").write_text("")
        time.sleep(60)
    finally:
        (work / "cleaned").write_text("")

main("demo", run, ["--params", str(work / "params.yaml")])
"""


def _start(tmp_path: Path, venv_env: dict[str, str]) -> subprocess.Popen[str]:
    (tmp_path / "params.yaml").write_text("{}\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE, str(tmp_path)],
        env=venv_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stage did not start"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
    ids=["sigterm", "sigint"],
)
def test_sigterm_stops_a_stage_like_ctrl_c(tmp_path, venv_env, sig, code, word):
    proc = _start(tmp_path, venv_env)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert f"aver demo: {word}" in err and "rerun to resume" in err
    assert "Traceback" not in err
    assert (tmp_path / "cleaned").exists(), "the stage's cleanup did not run"

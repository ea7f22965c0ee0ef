"""Stopping test subprocesses that lead their own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop_process_group(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """SIGTERM the process group `proc` leads (it was started with a new session), then KILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
    proc.wait(timeout=grace_s)

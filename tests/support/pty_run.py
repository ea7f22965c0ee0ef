"""Run a command on a pseudo-terminal (stdout and stderr are a TTY); its output as text."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_in_pty(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: str | Path | None = None,
) -> str:
    """Everything the command wrote to the terminal; fails if it exits non-zero or times out."""
    master, slave = pty.openpty()
    # a real terminal's size (a fresh pty has 0 columns, where tqdm draws an empty bar)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        list(cmd), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            raise TimeoutError(f"{cmd[:3]} ran past {timeout} s")
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    if rc != 0:
        raise AssertionError(f"{cmd[:3]} exited {rc}:\n{text[-3000:]}")
    return text

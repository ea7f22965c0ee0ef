"""A real `mlflow server` on a free 127.0.0.1 port for tests, stopped with its workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import stop_process_group


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    """True when `url` returns 200 (no proxy: loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def mlflow_server(
    store_db: Path,
    artifacts: Path,
    *,
    cwd: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 90.0,
) -> Iterator[str]:
    """Serve the sqlite store `store_db` and `artifacts` on 127.0.0.1; yields the base URL."""
    port = free_port()
    env = dict(os.environ if env is None else env)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job workers: tests only log/read
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{store_db}",
        "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    with _serving(cmd, port, "/health", cwd, env, log_path, timeout_s, 0.3) as url:
        yield url


@contextmanager
def model_server(
    model_uri: str,
    *,
    cwd: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """`mlflow models serve -m model_uri --env-manager local` on a free 127.0.0.1 port, up when
    /ping answers; yields the base URL and stops the server's process group afterwards."""
    port = free_port()
    env = dict(os.environ if env is None else env)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cmd = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
        "-h", "127.0.0.1", "-p", str(port), "--env-manager", "local", "--workers", "1",
    ]  # fmt: skip
    with _serving(cmd, port, "/ping", cwd, env, log_path, timeout_s, 0.5) as url:
        yield url


@contextmanager
def _serving(
    cmd: list[str],
    port: int,
    health: str,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout_s: float,
    poll_s: float,
) -> Iterator[str]:
    """Start `cmd` (a server on 127.0.0.1:`port`) in its own process group, wait until
    `health` answers, yield the base URL, stop the group afterwards."""
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not answers(f"{url}{health}"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{' '.join(cmd[2:])} did not come up on {url}:\n{tail}")
            time.sleep(poll_s)
        yield url
    finally:
        stop_process_group(proc)

"""A real two-node Ray cluster on this machine: a sweep through RAY_ADDRESS uses both nodes."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.tuning.conftest import run_tune, write_params

pytestmark = pytest.mark.e2e
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(venv_env) -> str:
    return str(Path(sys.executable).with_name("ray"))


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = (
        f"import ray; ray.init(address='{address}', _node_ip_address='{HEAD_IP}', "
        "log_to_driver=False); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0


# slow (about a minute or more); tests/tuning/test_autoscaler.py runs trials on added worker nodes
@pytest.mark.slow
def test_sweep_runs_on_both_nodes_of_a_two_node_cluster(tmp_path, tiny_cache, venv_env):
    env = {k: v for k, v in venv_env.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    # Token auth (Ray's default for new clusters) with a throw-away token; nodes on distinct
    # loopback addresses (Ray rewrites 127.0.0.1 to the network address).
    env.update(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), AVER_RAY_NODE_IP=HEAD_IP
    )
    port = _free_port()
    address = f"{HEAD_IP}:{port}"
    ray = _ray(venv_env)
    head = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            "--block",
            f"--node-ip-address={HEAD_IP}",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.time() + 120
        while _alive_nodes(address, env) < 1:
            assert time.time() < deadline and head.poll() is None, "ray head did not start"
            time.sleep(2)
        worker = subprocess.Popen(
            [
                ray,
                "start",
                "--block",
                f"--address={address}",
                f"--node-ip-address={WORKER_IP}",
                "--num-cpus=1",
                "--disable-usage-stats",
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while _alive_nodes(address, env) < 2:
            assert time.time() < deadline and worker.poll() is None, "worker did not join"
            time.sleep(2)

        params = write_params(
            tmp_path,
            tiny_cache,
            num_samples=4,
            max_concurrent=2,
            cpus_per_trial=1,
            scheduler="fifo",
        )
        run_tune(params, {**env, "RAY_ADDRESS": address})

        table = pd.read_csv(tmp_path / "reports/tune/results.csv", keep_default_na=False)
        assert len(table) == 4 and (table["error"] == "").all()
        assert table["node"].nunique() == 2, f"trials ran on {set(table['node'])}"
    finally:
        # Stop each node by its own process id (`ray start --block` stops its node on SIGTERM).
        for proc in (worker, head):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    assert head.returncode is not None and worker.returncode is not None

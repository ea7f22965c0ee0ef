"""aver.parallel: the private local Ray listens on loopback only; a stopped pool stops."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aver.parallel import imap_unordered

# Starts a private local Ray through aver, runs one task (so a worker process starts its gRPC
# server too), prints every listening TCP socket of this process and its descendants, shuts Ray
# down and prints the process ids with their start times (to check none is left).
LISTENERS = """
import json, psutil, ray
from aver.parallel import ray_init

ray_init(num_cpus=1)
assert ray.get(ray.remote(lambda: 1).remote()) == 1
me = psutil.Process()
procs = [me, *me.children(recursive=True)]
listening = [
    [p.pid, p.name(), c.laddr.ip, c.laddr.port]
    for p in procs
    for c in p.net_connections(kind="tcp")
    if c.status == psutil.CONN_LISTEN
]
ray.shutdown()
print("RESULT", json.dumps({
    "listening": listening,
    "procs": [[p.pid, p.create_time()] for p in procs if p.pid != me.pid],
}))
"""


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1, an IPv6 socket on loopback
    return (mapped or addr).is_loopback


def _leftovers(procs: list[list]) -> list[psutil.Process]:
    """The processes of `procs` (pid, create_time) still running."""
    alive = []
    for pid, created in procs:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.skipif(sys.platform != "linux", reason="reads the sockets of Linux processes")
def test_private_local_ray_listens_on_loopback_only(venv_env):
    """Every TCP socket the GCS, raylet (node and object managers), driver, workers and the
    runtime-env agent listen on is on 127.0.0.1 (Ray binds them to loopback only when the node IP
    is exactly 127.0.0.1). This venv's Ray is the minimal install, so the dashboard agent opens
    no port here; with ray[default] its gRPC and HTTP servers follow the same node IP."""
    env = {k: v for k, v in venv_env.items() if k not in ("RAY_ADDRESS", "AVER_RAY_NODE_IP")}
    run = subprocess.run(
        [sys.executable, "-c", LISTENERS], env=env, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    _gone, left = psutil.wait_procs(_leftovers(result["procs"]), timeout=15)
    for proc in left:  # never leave a Ray behind, even when the test fails
        proc.kill()
    assert not left, f"Ray processes left 15 s after ray.shutdown(): {left}"

    listening = result["listening"]
    names = {name for _pid, name, _ip, _port in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # the check saw Ray's servers
    wide = [entry for entry in listening if not _is_loopback(entry[2])]
    assert not wide, f"listening beyond loopback (pid, process, address, port): {wide}"


def _slow(path: str) -> str:
    """Mark the item as started, then take a while."""
    Path(path).write_text("")
    time.sleep(0.5)
    return path


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs for a process pool")
def test_interrupted_pool_drops_queued_items(tmp_path):
    items = [str(tmp_path / f"{i}.started") for i in range(20)]
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in imap_unordered(_slow, items, workers=2):
            raise KeyboardInterrupt  # Ctrl-C / SIGTERM in the caller after the first result
    elapsed = time.monotonic() - t0
    started = len(list(tmp_path.glob("*.started")))
    # Only the items already handed to the two workers ran (the pool queues one extra each).
    assert started <= 6, f"{started} of 20 items ran after the interrupt"
    assert elapsed < 4.0, f"the interrupt waited {elapsed:.1f} s for queued items"


def test_default_node_ip_is_loopback_for_a_local_ray_and_one_on_loopback():
    from aver.parallel import _default_node_ip

    assert _default_node_ip(None) == "127.0.0.1"
    assert _default_node_ip("127.0.0.1:6379") == "127.0.0.1"
    assert _default_node_ip("ray://127.0.0.1:10001") == "127.0.0.1"
    assert _default_node_ip("10.0.0.5:6379") is None  # a cluster: Ray finds this node's IP

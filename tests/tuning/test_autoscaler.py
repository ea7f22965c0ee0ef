"""Ray's own autoscaler on this machine: a sweep and the align stage scale GPU workers up from zero.

The cluster is `tests/tuning/fake-autoscaling.yaml`: a CPU-0 head and `gpu_worker` nodes with a
fake GPU each (Ray's fake multinode provider starts every "node" as Ray processes here),
`min_workers: 0`, idle ones removed after 6 s. At submit time the cluster has no GPU; trials ask
for one anyway (the autoscaler can add it), the autoscaler launches GPU workers, every trial runs on
one (on the CPU: torch sees no fake GPU) and the workers go away once idle.

Everything listens on 127.0.0.1 only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps Ray from replacing
the loopback node IP, also for the nodes the autoscaler starts), with token auth and a private
temp dir; every process is stopped by its own process group, and none of the session is left.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.support.processes import stop_process_group
from tests.tuning.conftest import tune_cmd, write_params

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
NODES = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
print("NODES " + json.dumps([
    {"id": n["NodeID"], "alive": n["Alive"], "gpu": n["Resources"].get("GPU", 0),
     "head": "node:__internal_head__" in n["Resources"], "death": n["DeathReasonMessage"]}
    for n in ray.nodes()
]))
"""

# Prints the ids of the nodes alive with a GPU resource, every second, until stopped.
WATCH = """
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
print("READY", flush=True)
while True:
    alive = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU", 0) > 0]
    print("GPU " + json.dumps(alive), flush=True)
    time.sleep(1)
"""


@dataclass
class Head:
    address: str
    env: dict[str, str]
    proc: subprocess.Popen
    temp_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(head: Head) -> set[int]:
    """Processes of this Ray session: in the head's process group or naming its temp dir."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        if int(fields[2]) == head.proc.pid or str(head.temp_dir).encode() in cmdline:
            found.add(int(entry.name))
    return found


def _start_head(venv_env: dict[str, str], *args: str) -> Head:
    temp_dir = Path(tempfile.mkdtemp(prefix="aver-ray-", dir="/tmp"))  # short: socket paths
    env = {k: v for k, v in venv_env.items() if k not in ("RAY_ADDRESS", "AVER_RAY_NODE_IP")}
    env.update(
        PYTHONPATH=str(SRC),
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),
        RAY_USAGE_STATS_ENABLED="0",
    )
    port = _free_port()
    address = f"127.0.0.1:{port}"
    config = temp_dir / "autoscaling.yaml"
    if "--autoscaling-config" in args:  # the fake provider's GCS address: this head's
        raw = yaml.safe_load((HERE / "fake-autoscaling.yaml").read_text())
        raw["provider"]["gcs_address"] = address
        config.write_text(yaml.safe_dump(raw))
        flag = f"--autoscaling-config={config}"
        args = tuple(flag if a == "--autoscaling-config" else a for a in args)
        env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
    cmd = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-gpus=0",
        f"--temp-dir={temp_dir}",
        "--object-store-memory=100000000",
        "--include-dashboard=false",
        "--disable-usage-stats",
        *args,
    ]
    log = (temp_dir / "head.log").open("w")
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=log, stderr=log)
    head = Head(address, env, proc, temp_dir)
    try:
        _wait(lambda: _alive(head), 120, "the Ray head did not start", head)
    except BaseException:
        _stop_head(head)
        raise
    return head


def _stop_head(head: Head) -> None:
    """Stop the head (`ray start --block` drains and stops its node on SIGTERM, its autoscaler the
    nodes it started), then its process group; check that nothing of the session is left."""
    if head.proc.poll() is None:
        head.proc.send_signal(signal.SIGTERM)  # alone first: it drains through the live GCS
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.proc.wait(timeout=60)
    stop_process_group(head.proc, grace_s=30)  # whatever of its group is left
    left: set[int] = set()
    deadline = time.time() + 20
    while time.time() < deadline:
        left = _session_pids(head)
        if not left:
            break
        time.sleep(1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(head.temp_dir, ignore_errors=True)
    assert not left, f"Ray processes of the session left after the head stopped: {left}"


def _nodes(head: Head) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", NODES, head.address],
        env=head.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("NODES ")]
    assert lines, out.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("NODES "))


def _alive(head: Head) -> list[dict]:
    try:
        return [n for n in _nodes(head) if n["alive"]]
    except (AssertionError, subprocess.TimeoutExpired):
        return []


def _wait(cond, timeout: float, what: str, head: Head) -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline or head.proc.poll() is not None:
            log = (head.temp_dir / "head.log").read_text()[-2000:]
            raise AssertionError(f"{what} (within {timeout} s)\n{log}")
        time.sleep(2)


def _only_head_alive(head: Head) -> bool:
    alive = _alive(head)
    return len(alive) == 1 and alive[0]["head"]


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.Popen:
    """Run a stage in its own process group (stopped by it on a timeout); returns the process
    with `.out` holding stdout + stderr."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        proc.out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(proc)
        raise
    return proc


@pytest.fixture(scope="module")
def autoscaling(venv_env) -> Iterator[Head]:
    head = _start_head(venv_env, "--num-cpus=0", "--autoscaling-config")
    try:
        yield head
    finally:
        _stop_head(head)


def _gpu_workers(nodes: list[dict]) -> set[str]:
    return {n["id"] for n in nodes if n["gpu"] > 0}


@contextlib.contextmanager
def _gpu_nodes_seen(head: Head) -> Iterator[set[str]]:
    """The ids of every node seen alive with a GPU resource meanwhile (a dead node's resources
    are no longer listed); a watcher process polls ray.nodes() every second."""
    seen: set[str] = set()
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCH, head.address], env=head.env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        yield seen
    finally:
        stop_process_group(proc)
        for line in proc.stdout.read().splitlines() if proc.stdout else []:
            if line.startswith("GPU "):
                seen.update(json.loads(line.removeprefix("GPU ")))


def test_sweep_asks_for_gpus_the_autoscaler_adds_and_they_go_away_idle(
    autoscaling, tmp_path, tiny_cache
):
    head = autoscaling
    _wait(lambda: _only_head_alive(head), 120, "idle workers were not removed", head)
    before = _nodes(head)
    assert not _gpu_workers([n for n in before if n["alive"]]), "a GPU before the sweep"

    params = write_params(
        tmp_path, tiny_cache, num_samples=3, max_concurrent=2, cpus_per_trial=1,
        gpus_per_trial=1, scheduler="fifo", pending_timeout_s=300,
    )  # fmt: skip
    env = {**head.env, "RAY_ADDRESS": head.address}
    start = time.time()
    with _gpu_nodes_seen(head) as seen:
        proc = _run(tune_cmd(params), env, tmp_path, timeout=400)
    assert proc.returncode == 0, proc.out[-6000:]
    assert "tune.gpus_per_trial=1: autoscaler node type gpu_worker has them" in proc.out
    print(f"sweep: {time.time() - start:.0f} s")

    launched = seen - {n["id"] for n in before}
    assert launched, f"the autoscaler launched no GPU worker: {_nodes(head)}"
    table = pd.read_csv(tmp_path / "reports/tune/results.csv", keep_default_na=False)
    assert len(table) == 3 and (table["error"] == "").all(), table
    assert set(table["node"]) <= launched, f"trials ran on {set(table['node'])}, not {launched}"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("aver.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("aver.kind") == "trial"]
    assert len(trials) == 3
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["aver.ray_node"] in launched
        assert json.loads(run.data.tags["aver.resources"]) == {"CPU": 1.0, "GPU": 1.0}
        assert run.info.status == "FINISHED"

    start = time.time()
    _wait(lambda: _only_head_alive(head), 120, "idle GPU workers were not removed", head)
    print(f"idle workers removed in {time.time() - start:.0f} s")
    # The autoscaler drains an idle node, then its provider SIGTERMs the node's processes: the
    # GCS records whichever it saw first.
    gone = {n["id"]: n["death"] for n in _nodes(head) if n["id"] in launched}
    assert set(gone.values()) <= {"Terminated by autoscaler.", "received SIGTERM"}, gone


def test_cpus_no_node_type_has_fail_before_any_trial(autoscaling, tmp_path, tiny_cache):
    head = autoscaling
    params = write_params(tmp_path, tiny_cache, cpus_per_trial=2, gpus_per_trial=1)
    proc = _run(tune_cmd(params), {**head.env, "RAY_ADDRESS": head.address}, tmp_path, 300)
    assert proc.returncode == 1, proc.out[-4000:]
    assert "tune.cpus_per_trial=2, tune.gpus_per_trial=1 but no node has them" in proc.out
    assert "gpu_worker {CPU 1, GPU 1}" in proc.out and "Traceback" not in proc.out
    assert not (tmp_path / "reports/tune/results.csv").exists()
    assert not _gpu_workers(_alive(head)), "a worker was launched for a sweep that cannot run"


def _interim(root: Path) -> Path:
    from tests.faces.conftest import blank, moving_face, two_faces, write_interim

    clips = {
        "a_hopper": moving_face(20),
        "b_astronaut": moving_face(20, name="astronaut", height=150),
        "c_two": two_faces(20, "hopper", "astronaut"),
        "d_noface": [blank(s) for s in range(20)],
    }
    return write_interim(root / "interim", clips)


def _align_params(root: Path, interim: Path, out: str, executor: str) -> Path:
    raw = {
        "data": {"dataset": "demo", "root": str(root / "raw")},
        "extract": {"out": str(interim)},
        "align": {
            "out": str(root / out), "executor": executor, "workers": 1, "size": 64,
            "max_failure_fraction": 0.5, "device": "cpu",
        },
    }  # fmt: skip
    path = root / f"params-{out}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_align_tasks_run_on_autoscaled_workers_and_match_a_local_run(autoscaling, tmp_path):
    from aver.faces.store import FaceStore

    head = autoscaling
    _wait(lambda: _only_head_alive(head), 120, "idle workers were not removed", head)
    before = {n["id"] for n in _nodes(head)}
    interim = _interim(tmp_path)
    align = [sys.executable, "-m", "aver.cli", "align", "--params"]
    env = {**head.env, "RAY_ADDRESS": head.address}
    start = time.time()
    with _gpu_nodes_seen(head) as seen:
        params = _align_params(tmp_path, interim, "ray", "ray")
        proc = _run([*align, str(params)], env, tmp_path, 400)
    assert proc.returncode == 0, proc.out[-6000:]
    print(f"align on the cluster: {time.time() - start:.0f} s")
    # The head has no CPU: every task ran on a worker the autoscaler added for it.
    match = re.search(r"ray: 4 tasks ran on \d+ node\(s\): (\{.*\})", proc.out)
    assert match, proc.out[-4000:]
    ran_on = set(ast.literal_eval(match.group(1)))
    assert ran_on and ran_on <= seen - before, (ran_on, seen)

    local_env = {k: v for k, v in head.env.items() if k != "RAY_ADDRESS"}
    local = _run([*align, str(_align_params(tmp_path, interim, "local", "local"))], local_env,
                 tmp_path, 400)  # fmt: skip
    assert local.returncode == 0, local.out[-6000:]
    ours, theirs = FaceStore(tmp_path / "ray"), FaceStore(tmp_path / "local")
    pd.testing.assert_frame_equal(ours.index, theirs.index)
    assert sorted(ours.clip_ids) == ["a_hopper", "b_astronaut", "c_two"]
    for clip_id in ours.clip_ids:
        a, b = ours.load(clip_id), theirs.load(clip_id)
        assert np.array_equal(a["detected"], b["detected"])
        assert np.abs(a["landmarks"] - b["landmarks"]).max() < 0.5
    _wait(lambda: _only_head_alive(head), 120, "idle workers were not removed", head)


def test_sweep_waiting_for_what_nothing_provides_fails_after_the_pending_timeout(
    venv_env, tmp_path, tiny_cache
):
    """A head without a visible autoscaler (`--no-monitor`, as KubeRay runs it): aver cannot tell
    what could be added, asks for the GPU, and the pending-timeout ends the wait."""
    head = _start_head(venv_env, "--num-cpus=1", "--no-monitor")
    try:
        params = write_params(
            tmp_path, tiny_cache, num_samples=2, gpus_per_trial=1, pending_timeout_s=10
        )
        start = time.time()
        proc = _run(tune_cmd(params), {**head.env, "RAY_ADDRESS": head.address}, tmp_path, 300)
        print(f"failed after {time.time() - start:.0f} s")
    finally:
        _stop_head(head)
    assert proc.returncode == 1, proc.out[-4000:]
    assert "autoscaler can add: unknown (no autoscaler process on the head node)" in proc.out
    assert "no trial started for 10 s (tune.pending_timeout_s)" in proc.out, proc.out[-4000:]
    assert "wait for {CPU: 1, GPU: 1} each" in proc.out

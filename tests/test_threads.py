"""The thread policy: a worker's torch threads = cores given // sibling workers, never more."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aver import threads
from aver.errors import ConfigError
from aver.parallel import imap_unordered


def _worker_threads(_: int) -> tuple[int, int, str]:
    """Pool worker: its torch threads, pid and the OMP_NUM_THREADS its children would get."""
    import torch

    return torch.get_num_threads(), os.getpid(), os.environ["OMP_NUM_THREADS"]


@pytest.mark.parametrize(("workers", "cores", "expected"), [(1, 2, 2), (2, 2, 1), (3, 2, 1)])
def test_threads_for_divides_cores_among_workers(workers, cores, expected, monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    assert threads.threads_for(workers, cores) == expected
    assert threads.threads_for(2, 16) == 8


def test_aver_threads_overrides_and_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.threads_for(8, 2) == 3
    monkeypatch.setenv(threads.CORES_ENV, "zero")
    with pytest.raises(ConfigError, match=r"(?s)AVER_CORES=.zero.*unset AVER_CORES"):
        threads.available_cores()


def test_cgroup_quota_caps_cores():
    assert threads.cgroup_quota("max 100000") is None
    assert threads.cgroup_quota("150000 100000") == 2
    assert threads.cgroup_quota("50000 100000") == 1


@pytest.mark.parametrize(("workers", "cores"), [(2, 2), (2, 4), (4, 4), (3, 8)])
def test_pool_workers_get_cores_over_workers_threads(workers, cores, monkeypatch):
    """N local workers on M cores (AVER_CORES=M): each worker runs M // N torch threads."""
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setenv(threads.CORES_ENV, str(cores))
    results = [r for _, r in imap_unordered(_worker_threads, range(4 * workers), workers=workers)]
    pids = {pid for _, pid, _ in results}
    assert os.getpid() not in pids and len(pids) <= workers  # pool workers, no more than asked
    assert {(n, omp) for n, _, omp in results} == {(cores // workers, str(cores // workers))}


def test_a_stage_process_uses_every_core_and_logs_the_policy_once(tmp_path):
    """A fresh process (as a stage or `aver predict` starts) gets all its cores, said once."""
    code = (
        "import logging, torch; logging.basicConfig(level=logging.INFO);"
        "from aver import threads; threads.apply(); threads.apply();"
        "print(torch.get_num_threads())"
    )
    env = {**os.environ, threads.CORES_ENV: "2"}
    env.pop(threads.THREADS_ENV, None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "2"
    assert out.stderr.count("threads: 2 per process (2 cores, 1 worker(s)") == 1


def test_the_policy_does_not_import_torch_and_torch_imported_later_follows_it():
    """A worker that never uses torch (extract) does not pay its import; one that imports it
    afterwards (align's detector) still runs the policy's count."""
    code = (
        "import sys; from aver import threads; n = threads.apply(workers=2, cores=4);"
        "loaded = 'torch' in sys.modules; import torch;"
        "print(n, loaded, torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k not in (threads.THREADS_ENV, "OMP_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["2", "False", "2"]


RAY_TASKS = """
import json, ray
from aver.parallel import imap_unordered, ray_init

def torch_threads(_):
    import torch
    return torch.get_num_threads()

ray_init(num_cpus=2)
out = {}
for cpus in (1, 2):
    out[cpus] = sorted({n for _, n in imap_unordered(
        torch_threads, range(3), executor="ray", ray_num_cpus=cpus)})
ray.shutdown()
print("RESULT", json.dumps(out))
"""


def test_ray_tasks_use_the_cpus_ray_assigned_them(venv_env):
    """A task asking 1 CPU runs 1 torch thread, one asking 2 runs 2 (on a private local Ray)."""
    env = {**venv_env, threads.CORES_ENV: "2"}
    env.pop(threads.THREADS_ENV, None)
    out = subprocess.run(
        [sys.executable, "-c", RAY_TASKS], env=env, capture_output=True, text=True, timeout=300
    )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, out.stdout + out.stderr
    assert json.loads(line[0][7:]) == {"1": [1], "2": [2]}


AFTER_PARALLEL_WORK = """
import cv2, numpy as np, torch
from aver.parallel import imap_unordered
from aver import threads

img = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
for _ in range(10):  # OpenCV's and torch's thread pools busy in the parent before it forks
    cv2.resize(img, (400, 400), interpolation=cv2.INTER_AREA)
    torch.randn(600, 600) @ torch.randn(600, 600)

def work(i):
    threads.loader_worker_init(0)  # as a DataLoader worker forked from this one would
    small = cv2.resize(img, (300, 300), interpolation=cv2.INTER_AREA)
    return int(small.sum() > 0) + int((torch.randn(200, 200) @ torch.randn(200, 200)).numel() > 0)

print("RESULT", sorted(r for _, r in imap_unordered(work, range(6), workers=2)))
"""


def test_forked_workers_do_not_hang_after_the_parent_used_opencv_and_torch(venv_env):
    """Setting OpenCV's threads in a fork hangs forever: forks inherit the parent's setting."""
    env = {**venv_env, threads.CORES_ENV: "2"}
    env.pop(threads.THREADS_ENV, None)
    out = subprocess.run(
        [sys.executable, "-c", AFTER_PARALLEL_WORK],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "RESULT [2, 2, 2, 2, 2, 2]" in out.stdout, out.stdout + out.stderr

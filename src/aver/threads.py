"""Thread policy: a process uses (the cores it was given) // (its sibling workers) threads.

Every process aver starts calls `apply`: stage processes and their pool workers (through
`aver.parallel`), Ray tasks, Tune trials and Ray Train workers (with the CPUs Ray assigned),
DataLoader workers (one thread each) and `aver predict`. It sets torch's intra-op threads and
OpenCV's, and exports OMP/MKL/OpenBLAS thread counts for child processes, so workers x threads
never exceeds the cores.

Overrides (environment, read at each call): `AVER_CORES` = cores aver may use on this machine
(default: the CPU affinity mask, capped by a cgroup CPU quota); `AVER_THREADS` = threads per
process, whatever the worker count. `OMP_NUM_THREADS` set by hand is overwritten: use
`AVER_THREADS`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from aver.errors import ConfigError

log = logging.getLogger(__name__)

CORES_ENV = "AVER_CORES"
THREADS_ENV = "AVER_THREADS"
LIBRARY_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_logged: set[tuple[int, int, int]] = set()
_forked = False  # this process is a fork (pool or DataLoader worker) of an aver process


def _mark_forked() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_mark_forked)


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}={raw!r} is not a whole number >= 1", fix=f"unset {name}")
    return value


def cgroup_quota(text: str) -> int | None:
    """Whole cores allowed by a cgroup v2 `cpu.max` line ("max 100000" or "200000 100000")."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1])
    return max(1, math.ceil(quota / period)) if period > 0 else None


def available_cores() -> int:
    """Cores this process may use: AVER_CORES, else affinity mask capped by the cgroup quota."""
    forced = _env_int(CORES_ENV)
    if forced is not None:
        return forced
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota = cgroup_quota(CGROUP_CPU_MAX.read_text())
    except (OSError, ValueError):
        quota = None
    return max(1, min(cores, quota) if quota else cores)


def threads_for(workers: int = 1, cores: int | None = None) -> int:
    """Threads for one of `workers` sibling processes sharing `cores` (AVER_THREADS wins)."""
    forced = _env_int(THREADS_ENV)
    if forced is not None:
        return forced
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def apply(workers: int = 1, cores: int | None = None) -> int:
    """Set this process's torch/OpenCV threads and its children's library env; return the count.

    torch is not imported for this (seconds of start-up a worker that never uses torch, such as
    an extract worker, would pay): when it is not loaded yet, it reads OMP_NUM_THREADS, set here,
    when it is."""
    given = available_cores() if cores is None else max(1, int(cores))
    n = threads_for(workers, given)
    for name in LIBRARY_ENV:
        os.environ[name] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and not _forked:
        # OpenCV's thread pool does not survive fork: setting it in a forked child can hang
        # forever. A fork inherits the count its parent set (`for_pool`).
        cv2.setNumThreads(n)
    key = (n, given, workers)
    if key not in _logged:
        _logged.add(key)
        level = logging.INFO if multiprocessing.parent_process() is None else logging.DEBUG
        log.log(
            level,
            "threads: %d per process (%d cores, %d worker(s); override with %s/%s)",
            n,
            given,
            workers,
            THREADS_ENV,
            CORES_ENV,
        )
    return n


@contextlib.contextmanager
def for_pool(workers: int) -> Iterator[None]:
    """While a pool of `workers` forks from this process: OpenCV at the workers' thread count
    (the forks inherit it and never touch OpenCV's pool), restored afterwards."""
    cv2 = sys.modules.get("cv2")
    if cv2 is None or _forked:
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads_for(workers))
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def apply_ray_assigned() -> int:
    """In a Ray task, trial or train worker: threads = the CPUs Ray assigned to it (>= 1)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return apply(workers=1, cores=max(1, int(cpus)))


def loader_worker_init(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: one thread per loader worker (they read and augment)."""
    apply(workers=1, cores=1)

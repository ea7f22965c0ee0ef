"""Map a function over items with a local process pool or a Ray cluster, one interface."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Literal, TypeVar

from aver import threads
from aver.progress import bar as progress_bar

T = TypeVar("T")
R = TypeVar("R")

Executor = Literal["local", "ray"]
log = logging.getLogger(__name__)


def imap_unordered(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    executor: Executor = "local",
    workers: int = 1,
    desc: str = "",
    unit: str = "clip",
    ray_num_cpus: float = 1.0,
) -> Iterator[tuple[T, R]]:
    """Yield (item, fn(item)) as results complete, with a progress bar.

    `fn` must be a picklable top-level function. Exceptions raised by `fn` propagate; callers
    that want per-item failure records should catch inside `fn` and return them.
    `executor="ray"` connects to RAY_ADDRESS when set, else starts a local Ray. Each pool
    worker and Ray task sets its threads by `aver.threads` (cores // workers; Ray: its CPUs).
    """
    items = list(items)
    bar = progress_bar(total=len(items), desc=desc, unit=unit, disable=not items)
    try:
        if executor == "ray":
            yield from _ray_map(fn, items, bar, ray_num_cpus)
        elif workers <= 1 or len(items) <= 1:
            for item in items:
                result = fn(item)
                bar.update(1)
                yield item, result
        else:
            workers = min(workers, threads.available_cores(), len(items))
            with ProcessPoolExecutor(
                max_workers=workers, initializer=threads.apply, initargs=(workers,)
            ) as pool:
                futures = {pool.submit(fn, item): item for item in items}
                try:
                    for fut in as_completed(futures):
                        bar.update(1)
                        yield futures[fut], fut.result()
                except BaseException:  # Ctrl-C, SIGTERM, an error, or the caller stopped early
                    # Drop the queued items: only the ones already running are waited for.
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()


LOOPBACK_NODE_IP = "127.0.0.1"


def ray_init(*, num_cpus: int | None = None, runtime_env: dict | None = None) -> None:
    """Connect to the cluster at RAY_ADDRESS, else start a private local Ray on loopback only.

    Ray's servers (GCS, raylet node and object managers, workers, agents) listen on 127.0.0.1
    only when the node IP is exactly 127.0.0.1, else on every interface; so the local Ray gets
    that node IP, kept by `_keep_loopback` (Ray on Linux would swap it for the network address).
    AVER_RAY_NODE_IP overrides this machine's node address (local Ray or cluster driver).
    """
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or None
    node_ip = os.environ.get("AVER_RAY_NODE_IP") or _default_node_ip(address)
    kwargs: dict = {"include_dashboard": False, "log_to_driver": True}
    if node_ip:
        kwargs["_node_ip_address"] = node_ip
    if not address and num_cpus:
        kwargs["num_cpus"] = num_cpus
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    loopback = node_ip == LOOPBACK_NODE_IP
    with _keep_loopback() if loopback else contextlib.nullcontext(), keep_sigterm_handler():
        # "local" starts a fresh instance: never join a cluster nobody asked for (a stale
        # /tmp/ray/ray_current_cluster would otherwise be tried).
        ray.init(address=address or "local", **kwargs)


def _default_node_ip(address: str | None) -> str | None:
    """127.0.0.1 for a local Ray and for joining one on 127.0.0.1 (same machine); else Ray's."""
    if address is None:
        return LOOPBACK_NODE_IP
    host = address.split("://")[-1].rsplit(":", 1)[0]
    return LOOPBACK_NODE_IP if host == LOOPBACK_NODE_IP else None


@contextlib.contextmanager
def _keep_loopback() -> Iterator[None]:
    """Stop `ray.init` from replacing node IP 127.0.0.1 with the machine's network address.

    Ray does that only while `ray_constants.ENABLE_RAY_CLUSTER` is true (the default on Linux;
    env RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, read at import), so it is false for the call.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _on_node(fn, item):
    """Ray task: fn(item), with the id of the node it ran on (threads: the task's CPUs)."""
    import ray

    threads.apply_ray_assigned()
    return ray.get_runtime_context().get_node_id(), fn(item)


@contextlib.contextmanager
def keep_sigterm_handler() -> Iterator[None]:
    """Restore a Python SIGTERM handler (the stage's) that the block replaced.

    ray.init installs its own (sys.exit); the stage's raises Terminated, so a SIGTERM still
    stops the stage like Ctrl-C (Ray's atexit hook then stops the processes it started).
    """
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if callable(before):
            signal.signal(signal.SIGTERM, before)


def exit_now_if_ray(code: int) -> None:
    """Exit at once, skipping exit hooks, when this process uses Ray; else return.

    For a stage stopped by SIGTERM (its runs already closed). A SIGTERM to the process group
    (`timeout`, systemd, Slurm) also stops the Ray processes a local Ray started, and Ray's exit
    hook then waits about a minute for them. Those processes die with this one (Ray binds
    them to it); a cluster ends the job's workers when its driver goes.
    """
    import logging
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _ray_map(fn, items, bar, num_cpus):
    import ray

    ray_init()
    remote = ray.remote(num_cpus=num_cpus)(_on_node)
    pending = {remote.remote(fn, item): item for item in items}
    nodes: Counter[str] = Counter()
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            item = pending.pop(ref)
            node, result = ray.get(ref)
            nodes[node] += 1
            bar.update(1)
            yield item, result
    log.info("ray: %d tasks ran on %d node(s): %s", sum(nodes.values()), len(nodes), dict(nodes))

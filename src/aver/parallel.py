"""Map a function over items with a local process pool or a Ray cluster, one interface."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Literal, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")

Executor = Literal["local", "ray"]


def imap_unordered(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    executor: Executor = "local",
    workers: int = 1,
    desc: str = "",
    ray_num_cpus: float = 1.0,
) -> Iterator[tuple[T, R]]:
    """Yield (item, fn(item)) as results complete, with a progress bar.

    `fn` must be a picklable top-level function. Exceptions raised by `fn` propagate; callers
    that want per-item failure records should catch inside `fn` and return them.
    `executor="ray"` connects to RAY_ADDRESS when set, else starts a local Ray.
    """
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not items)
    try:
        if executor == "ray":
            yield from _ray_map(fn, items, bar, ray_num_cpus)
        elif workers <= 1 or len(items) <= 1:
            for item in items:
                result = fn(item)
                bar.update(1)
                yield item, result
        else:
            workers = min(workers, os.cpu_count() or 1, len(items))
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(fn, item): item for item in items}
                for fut in as_completed(futures):
                    bar.update(1)
                    yield futures[fut], fut.result()
    finally:
        bar.close()


def _ray_map(fn, items, bar, num_cpus):
    import ray

    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False
        )
    remote = ray.remote(num_cpus=num_cpus)(fn)
    pending = {remote.remote(item): item for item in items}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            item = pending.pop(ref)
            bar.update(1)
            yield item, ray.get(ref)

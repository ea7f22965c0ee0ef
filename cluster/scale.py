"""Ask the Ray autoscaler for GPU workers before a sweep and wait for them; release them after.

aver sizes each trial from the GPUs the cluster has when the sweep starts
(aver.tuning.resources.trial_resources). The launcher config's GPU workers scale from zero and
its head has no CPUs, so a sweep started on the bare head would see neither and ask for nothing.
cluster/tune_job.sh therefore runs `scale.py request --gpus N` first (the autoscaler starts N
GPU workers and keeps them while the request stands) and `scale.py release` when it ends (idle
workers then go after `idle_timeout_minutes`).

    python cluster/scale.py request --gpus 1 --timeout 1200
    python cluster/scale.py release
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def wait_for_gpus(
    want: int,
    timeout_s: float,
    *,
    poll_s: float = 10.0,
    present: Callable[[], float] = cluster_gpus,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until the cluster has `want` GPUs; the count. TimeoutError after `timeout_s`."""
    deadline = clock() + timeout_s
    while (have := present()) < want:
        if clock() >= deadline:
            raise TimeoutError(
                f"the cluster has {have:g} of {want} GPUs after {timeout_s:g} s; see "
                "`ray monitor cluster/ray-cluster.yaml` for why workers did not start "
                "(instance quota, AMI, IAM instance profile, setup command failures)"
            )
        print(f"scale: {have:g}/{want} GPUs; waiting for the autoscaler", flush=True)
        sleep(poll_s)
    return have


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    req = sub.add_parser("request", help="ask for GPU workers and wait until they joined")
    req.add_argument("--gpus", type=int, default=1, help="GPUs to have before the sweep")
    req.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait")
    sub.add_parser("release", help="withdraw the request (idle workers then scale down)")
    args = parser.parse_args(argv)

    import ray
    from ray.autoscaler.sdk import request_resources

    ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False)
    if args.cmd == "release":
        request_resources(bundles=[])
        print("scale: GPU request withdrawn", flush=True)
        return 0
    request_resources(bundles=[{"GPU": 1}] * args.gpus)
    try:
        have = wait_for_gpus(args.gpus, args.timeout)
    except TimeoutError as err:
        print(f"scale: {err}", file=sys.stderr, flush=True)
        return 1
    print(f"scale: {have:g} GPUs in the cluster", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

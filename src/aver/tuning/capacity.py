"""What the Ray cluster offers now and what its autoscaler can add; a guard against endless waits.

Ray 2.60 has an API for the autoscaler's node types (`ray._private.state.state.
get_cluster_config()`, read by Ray Train and Data), but neither the v1 nor the v2 autoscaler
reports its config to the GCS (it stays None; checked with the fake multinode provider), so it is
used only when something filled it in (future Ray, KubeRay). Otherwise the autoscaler's own config
file is read on the head node: a zero-CPU task there finds the autoscaler process (`monitor.py`)
of this cluster (same `--gcs-address`) and loads its `--autoscaling-config`. A monitor without a
config is the read-only one of a manual cluster (nothing can be added); no monitor at all (KubeRay
runs it in another container, `ray start --no-monitor`) means aver cannot tell.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import tune

from aver.errors import AverError
from aver.tuning.resources import Capacity, Shape

log = logging.getLogger(__name__)

HEAD_RESOURCE = "node:__internal_head__"
MONITORS = ("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")
# Providers that start a node with exactly the declared resources (a missing CPU/GPU is 0); cloud
# providers detect undeclared CPUs/GPUs from the instance type, so a missing one is unknown.
DECLARED_IS_ALL = {"fake_multinode", "fake_multinode_docker"}


class PendingTimeout(AverError):
    """Trials waited `tune.pending_timeout_s` for resources and none started."""


def probe(*, local: bool, timeout_s: float = 60.0) -> Capacity:
    """The connected Ray's nodes and, on a cluster, the node types its autoscaler can add."""
    nodes = tuple(
        {"CPU": float(n["Resources"].get("CPU", 0)), "GPU": float(n["Resources"].get("GPU", 0))}
        for n in ray.nodes()
        if n["Alive"]
    )
    if local:
        return Capacity(nodes, {}, local=True, source="aver's private local Ray")
    types = _from_gcs()
    if types is not None:
        return Capacity(nodes, types, source="GCS cluster config")
    types, source = _from_head(timeout_s)
    return Capacity(nodes, types, source=source)


def _from_gcs() -> dict[str, Shape] | None:
    """Node groups the autoscaler reported to the GCS (None when it reported none)."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception as err:  # private API: absent or changed in this Ray
        log.debug("no GCS cluster config: %s", err)
        return None
    if config is None or not config.node_group_configs:
        return None
    types = {}
    for i, group in enumerate(config.node_group_configs):
        if group.max_count == 0:
            continue
        res = dict(group.resources)
        shape = {"CPU": float(res.get("CPU", 0)), "GPU": float(res.get("GPU", 0))}
        types[group.name or f"group{i}"] = shape
    return types


def _from_head(timeout_s: float) -> tuple[dict[str, Shape] | None, str]:
    """Node types from the autoscaling config of this cluster's autoscaler on the head node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next((n for n in ray.nodes() if n["Alive"] and HEAD_RESOURCE in n["Resources"]), None)
    if head is None:
        return None, "no head node found"
    task = ray.remote(  # type: ignore[call-overload]  # stubs omit NodeAffinitySchedulingStrategy
        num_cpus=0,
        max_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(head["NodeID"], soft=False),
    )(read_autoscaler_config)
    try:
        found = ray.get(task.remote(ray.get_runtime_context().gcs_address), timeout=timeout_s)
    except Exception as err:
        return None, f"could not look for the autoscaler on the head node: {type(err).__name__}"
    if not found["monitor"]:
        return None, "no autoscaler process on the head node"
    if found["config"] is None:
        return {}, "no autoscaling config: a manual cluster"
    return node_types(found["config"]), f"autoscaling config {found['path']}"


def read_autoscaler_config(gcs_address: str, proc: str = "/proc") -> dict[str, Any]:
    """On the head node: {"monitor": found?, "path": config file, "config": its contents}.

    Looks for the autoscaler (`python .../monitor.py --gcs-address=... --autoscaling-config=...`)
    among this node's processes, preferring the one of `gcs_address`.
    """
    monitors = []
    for entry in Path(proc).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            argv = [a.decode(errors="replace") for a in raw.split(b"\0")]
        except OSError:
            continue
        if not any(a.endswith(MONITORS) for a in argv):
            continue
        opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        monitors.append((entry, opts))
    if not monitors:
        return {"monitor": False, "path": None, "config": None}
    port = gcs_address.rsplit(":", 1)[-1]
    same = [m for m in monitors if m[1].get("gcs-address") == gcs_address]
    same = same or [m for m in monitors if m[1].get("gcs-address", "").endswith(f":{port}")]
    if not same:
        return {"monitor": False, "path": None, "config": None}
    entry, opts = same[0]
    if not opts.get("autoscaling-config"):
        return {"monitor": True, "path": None, "config": None}
    path = Path(opts["autoscaling-config"]).expanduser()
    if not path.is_absolute():
        path = (entry / "cwd").resolve() / path
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {"monitor": True, "path": str(path), "config": config}


def node_types(config: dict[str, Any]) -> dict[str, Shape]:
    """Worker node types an autoscaling config lets the autoscaler add, with their resources."""
    if config.get("max_workers", 1) == 0:
        return {}
    complete = (config.get("provider") or {}).get("type") in DECLARED_IS_ALL
    head = config.get("head_node_type")
    out: dict[str, Shape] = {}
    for name, spec in (config.get("available_node_types") or {}).items():
        spec = spec or {}
        if name == head or spec.get("max_workers", 1) == 0:
            continue
        declared = spec.get("resources") or {}
        shape = {k: float(declared[k]) for k in ("CPU", "GPU") if k in declared}
        if complete:
            shape = {"CPU": shape.get("CPU", 0.0), "GPU": shape.get("GPU", 0.0)}
        out[name] = shape
    return out


class PendingWatch(tune.Callback):
    """Fails the sweep when trials wait `timeout_s` with none running and none starting."""

    def __init__(self, timeout_s: float | None, resources: dict[str, float], offers: str):
        self.timeout_s = timeout_s
        self.resources = resources
        self.offers = offers
        self._since: float | None = None  # since when nothing ran nor started; None: restart

    def setup(self, *args: Any, **info: Any) -> None:
        self._since = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._since = None

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.check(trials, time.monotonic())

    def check(self, trials: list, now: float) -> None:
        statuses = {t.status for t in trials}
        if self.timeout_s is None or "RUNNING" in statuses or "PENDING" not in statuses:
            self._since = now
            return
        if self._since is None:
            self._since = now
        if now - self._since <= self.timeout_s:
            return
        waiting = sum(t.status == "PENDING" for t in trials)
        asked = ", ".join(f"{k.upper()}: {v:g}" for k, v in self.resources.items())
        raise PendingTimeout(
            f"no trial started for {self.timeout_s:g} s (tune.pending_timeout_s): {waiting} "
            f"trial(s) wait for {{{asked}}} each and no node provided it (at submit: "
            f"{self.offers}; now: {_now()})",
            fix="check that a node type of the autoscaling config provides it and that the "
            "autoscaler can launch it (`ray status`, the head's monitor.log), lower "
            "tune.cpus_per_trial / tune.gpus_per_trial, or raise tune.pending_timeout_s",
        )


def _now() -> str:
    try:
        total = ray.cluster_resources()
    except Exception:
        return "unknown"
    return f"CPU {total.get('CPU', 0):g}, GPU {total.get('GPU', 0):g}"

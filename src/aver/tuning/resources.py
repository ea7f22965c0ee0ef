"""Per-trial resources from intent: what `tune` asks for, checked against what the cluster can give.

A trial asks for `tune.cpus_per_trial` CPUs and `tune.gpus_per_trial` GPUs whenever a node has
them now or the autoscaler can add a node type that has them; not only when they happen to be
there at submit time (an autoscaling cluster with `min_workers: 0` GPU workers has no GPU then).
Where nothing can ever provide a GPU the trial runs on CPUs, with one log line saying why; where
nothing can provide what the trial needs at all, the sweep fails before it starts.

Pure: the decision is made from plain data (aver.tuning.capacity gathers it from Ray).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aver.config import TuneConfig
from aver.errors import ConfigError

# A node's or node type's resources: {"CPU": n, "GPU": n}. A key that is absent is unknown (a cloud
# provider detects CPUs/GPUs from the instance type when the autoscaling config does not declare
# them); a key present with 0 means none.
Shape = dict[str, float]

YES, MAYBE, NO = "yes", "maybe", "no"
UNKNOWN = "the autoscaler"  # stands for node types aver cannot read
_EPS = 1e-9


@dataclass(frozen=True)
class Capacity:
    """What the cluster offers: its nodes now and the node types its autoscaler can add."""

    nodes: tuple[Shape, ...]  # each alive node's total resources
    # Node types the autoscaler can still add (name -> declared resources); None: cannot tell
    # (an autoscaler aver cannot read, e.g. KubeRay's); {}: none (local Ray, manual cluster).
    node_types: dict[str, Shape] | None = field(default_factory=dict)
    local: bool = False  # aver's private local Ray: this machine, never grows
    source: str = ""  # where node_types came from, for messages

    def __str__(self) -> str:
        return describe(self)


@dataclass(frozen=True)
class TrialPlan:
    resources: dict[str, float]  # for tune.with_resources: {"cpu": n[, "gpu": n]}
    reason: str  # one line for the log: what was asked and why


def _fmt(x: float) -> str:
    return f"{x:g}"


def _shape(shape: Shape) -> str:
    parts = [f"{k} {_fmt(shape[k])}" if k in shape else f"{k} ?" for k in ("CPU", "GPU")]
    return "{" + ", ".join(parts) + "}"


def describe(cap: Capacity) -> str:
    """E.g. `nodes now: 1 x {CPU 0, GPU 0}; autoscaler can add: gpu_worker {CPU 4, GPU 1}`."""
    counts: dict[str, int] = {}
    for node in cap.nodes:
        key = _shape(node)
        counts[key] = counts.get(key, 0) + 1
    now = ", ".join(f"{n} x {key}" for key, n in counts.items()) or "none"
    if cap.local:
        return f"aver's private local Ray: {now}"
    if cap.node_types is None:
        add = "unknown" + (f" ({cap.source})" if cap.source else "")
    elif cap.node_types:
        add = ", ".join(f"{name} {_shape(s)}" for name, s in cap.node_types.items())
    else:
        add = "nothing" + (f" ({cap.source})" if cap.source else "")
    return f"nodes now: {now}; autoscaler can add: {add}"


def fits(shape: Shape, need: Shape) -> str:
    """YES when `shape` surely holds `need`, NO when surely not, MAYBE when it depends on an
    undeclared amount."""
    verdict = YES
    for key, amount in need.items():
        if amount <= 0:
            continue
        if key not in shape:
            verdict = MAYBE
        elif shape[key] + _EPS < amount:
            return NO
    return verdict


def _candidates(cap: Capacity) -> list[tuple[str, Shape]]:
    """(where, shape) for every node now and every node type the autoscaler can add."""
    out: list[tuple[str, Shape]] = [("a node now", node) for node in cap.nodes]
    if cap.node_types is None:
        out.append((UNKNOWN, {}))
    else:
        out += [(f"autoscaler node type {name}", s) for name, s in cap.node_types.items()]
    return out


def plan_trial(cfg: TuneConfig, cap: Capacity) -> TrialPlan:
    """The resources each trial asks for; ConfigError when nothing can ever provide them."""
    if cap.local:
        return _plan_local(cfg, cap)
    cpus, gpus = cfg.cpus_per_trial, cfg.gpus_per_trial
    candidates = _candidates(cap)
    ask = f"tune.cpus_per_trial={_fmt(cpus)}"
    if gpus > 0:
        ask += f", tune.gpus_per_trial={_fmt(gpus)}"
        verdicts = [(where, fits(s, {"CPU": cpus, "GPU": gpus})) for where, s in candidates]
        sure = [where for where, v in verdicts if v == YES]
        if sure:
            reason = f"each trial asks {ask}: {sure[0]} has them"
            return TrialPlan({"cpu": cpus, "gpu": gpus}, reason)
        maybe = [where for where, v in verdicts if v == MAYBE]
        if maybe:
            why = (
                "aver cannot tell what the autoscaler can add"
                if maybe[0] == UNKNOWN
                else f"{maybe[0]} may have them (it leaves them to the provider to detect)"
            )
            return TrialPlan(
                {"cpu": cpus, "gpu": gpus},
                f"each trial asks {ask}: no node has them now and {why} ({cap}); if none "
                "comes, the sweep fails after tune.pending_timeout_s",
            )
        if any(s.get("GPU", 1.0) > 0 for _, s in candidates):  # GPUs exist, but never enough
            raise ConfigError(
                f"each trial asks {ask} but no node has them and the autoscaler can add no node "
                f"type that has them ({cap})",
                fix="lower tune.gpus_per_trial / tune.cpus_per_trial to what one GPU node has, "
                "or add a node type that has them to the autoscaling config",
            )
        fallback = (
            f"tune.gpus_per_trial={_fmt(gpus)} but the cluster has no GPU and its autoscaler "
            f"can add none ({cap}): trials run on CPUs"
        )
    else:
        fallback = ""
    verdicts = [(where, fits(s, {"CPU": cpus})) for where, s in candidates]
    if any(v != NO for _, v in verdicts):
        return TrialPlan({"cpu": cpus}, fallback or f"each trial asks {ask}")
    known = [s["CPU"] for _, s in candidates if "CPU" in s]
    raise ConfigError(
        f"tune.cpus_per_trial={_fmt(cpus)} but no node has {_fmt(cpus)} CPUs and the autoscaler "
        f"can add no node type that has them (the most on one node: {_fmt(max(known, default=0))}"
        f"; {cap})",
        fix="lower tune.cpus_per_trial, or add a node type with that many CPUs to the "
        "autoscaling config",
    )


def _plan_local(cfg: TuneConfig, cap: Capacity) -> TrialPlan:
    """This machine is all there is: ask for at most what it has (and say so when that is less)."""
    have_cpu = sum(n.get("CPU", 0.0) for n in cap.nodes)
    have_gpu = sum(n.get("GPU", 0.0) for n in cap.nodes)
    cpus = min(cfg.cpus_per_trial, have_cpu) if have_cpu > 0 else cfg.cpus_per_trial
    notes = []
    if cpus < cfg.cpus_per_trial:
        notes.append(f"tune.cpus_per_trial={_fmt(cfg.cpus_per_trial)} capped at {_fmt(cpus)}")
    resources = {"cpu": cpus}
    if cfg.gpus_per_trial > 0 and have_gpu > 0:
        resources["gpu"] = min(cfg.gpus_per_trial, have_gpu)
        if resources["gpu"] < cfg.gpus_per_trial:
            notes.append(f"tune.gpus_per_trial={_fmt(cfg.gpus_per_trial)} capped at {have_gpu:g}")
    elif cfg.gpus_per_trial > 0:
        gpus = _fmt(cfg.gpus_per_trial)
        notes.append(f"tune.gpus_per_trial={gpus} but no GPU here: trials run on CPUs")
    asked = ", ".join(f"{_fmt(v)} {k.upper()}" for k, v in resources.items())
    if notes:
        return TrialPlan(resources, f"{'; '.join(notes)} ({cap})")
    return TrialPlan(resources, f"each trial asks {asked} ({cap})")


def loader_workers(cpus: float) -> int:
    """DataLoader workers for a trial: its CPUs less the one that runs the loop."""
    return max(0, int(cpus) - 1)

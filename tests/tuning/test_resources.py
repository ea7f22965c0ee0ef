"""Trial resources from intent (pure), the autoscaler's node types, the pending-timeout guard."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from aver.config import TuneConfig, parse_params
from aver.errors import ConfigError
from aver.tuning.capacity import PendingTimeout, PendingWatch, node_types, read_autoscaler_config
from aver.tuning.resources import MAYBE, NO, YES, Capacity, describe, fits, plan_trial
from aver.tuning.runner import sweep_key

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CPU_HEAD = {"CPU": 0.0, "GPU": 0.0}
GPU_TYPE = {"gpu_worker": {"CPU": 4.0, "GPU": 1.0}}


def cluster(*nodes, types=None, source="autoscaling config x.yaml") -> Capacity:
    return Capacity(tuple(nodes), {} if types is None else types, source=source)


def test_fits_is_yes_no_or_maybe_when_an_amount_is_undeclared():
    assert fits({"CPU": 4, "GPU": 1}, {"CPU": 4, "GPU": 1}) == YES
    assert fits({"CPU": 4, "GPU": 1}, {"CPU": 4, "GPU": 0.5}) == YES
    assert fits({"CPU": 4, "GPU": 0}, {"CPU": 1, "GPU": 1}) == NO
    assert fits({"CPU": 2}, {"CPU": 4, "GPU": 1}) == NO  # too few CPUs, whatever the GPU
    assert fits({"CPU": 4}, {"CPU": 4, "GPU": 1}) == MAYBE
    assert fits({}, {"CPU": 1}) == MAYBE
    assert fits({"CPU": 0}, {"CPU": 1, "GPU": 0}) == NO


def test_cpu_head_with_gpu_workers_at_zero_asks_for_the_gpu_the_autoscaler_can_add():
    """The case of the issue: at submit time only a CPU-0 head; GPU workers at min_workers 0."""
    cap = cluster(CPU_HEAD, types=GPU_TYPE)
    plan = plan_trial(TuneConfig(cpus_per_trial=2, gpus_per_trial=1), cap)
    assert plan.resources == {"cpu": 2.0, "gpu": 1.0}
    assert "autoscaler node type gpu_worker has them" in plan.reason


def test_gpu_now_or_fraction_is_asked_as_configured():
    cap = cluster({"CPU": 16.0, "GPU": 4.0})
    plan = plan_trial(TuneConfig(cpus_per_trial=2, gpus_per_trial=0.5), cap)
    assert plan.resources == {"cpu": 2.0, "gpu": 0.5}
    assert "a node now has them" in plan.reason


def test_cluster_that_can_never_have_a_gpu_runs_trials_on_cpus_and_says_why():
    cap = cluster(
        {"CPU": 2.0, "GPU": 0.0}, types={"cpu_worker": {"CPU": 8.0, "GPU": 0.0}}, source="cfg"
    )
    plan = plan_trial(TuneConfig(cpus_per_trial=4, gpus_per_trial=1), cap)
    assert plan.resources == {"cpu": 4.0}
    assert plan.reason.startswith("tune.gpus_per_trial=1 but the cluster has no GPU")
    assert "cpu_worker {CPU 8, GPU 0}" in plan.reason and "trials run on CPUs" in plan.reason


def test_manual_cluster_without_gpu_falls_back_to_cpu():
    cap = cluster({"CPU": 1.0, "GPU": 0.0}, {"CPU": 1.0, "GPU": 0.0}, source="manual cluster")
    plan = plan_trial(TuneConfig(gpus_per_trial=1), cap)
    assert plan.resources == {"cpu": 1.0}
    assert "autoscaler can add: nothing (manual cluster)" in plan.reason


def test_no_gpu_asked_means_cpu_only():
    cap = cluster(CPU_HEAD, types=GPU_TYPE)
    plan = plan_trial(TuneConfig(cpus_per_trial=1, gpus_per_trial=0), cap)
    assert plan.resources == {"cpu": 1.0}


def test_cpus_no_node_type_has_fail_up_front_naming_the_param():
    cap = cluster(CPU_HEAD, types={"w": {"CPU": 4.0, "GPU": 0.0}})
    with pytest.raises(ConfigError, match=r"tune\.cpus_per_trial=8 but no node has 8 CPUs") as err:
        plan_trial(TuneConfig(cpus_per_trial=8, gpus_per_trial=0), cap)
    assert "the most on one node: 4" in str(err.value) and "Fix:" in str(err.value)


def test_gpus_beyond_any_node_fail_up_front():
    cap = cluster(CPU_HEAD, types=GPU_TYPE)
    with pytest.raises(ConfigError, match=r"tune\.gpus_per_trial=2 but no node has them"):
        plan_trial(TuneConfig(cpus_per_trial=1, gpus_per_trial=2), cap)


def test_gpu_nodes_too_small_for_the_cpus_fail_rather_than_silently_using_cpu_nodes():
    cap = cluster({"CPU": 16.0, "GPU": 0.0}, types=GPU_TYPE)
    with pytest.raises(ConfigError, match=r"tune\.cpus_per_trial=8, tune\.gpus_per_trial=1"):
        plan_trial(TuneConfig(cpus_per_trial=8, gpus_per_trial=1), cap)


def test_undeclared_gpus_on_a_cloud_node_type_are_asked_for_with_the_timeout_as_backstop():
    """cluster/ray-cluster.yaml leaves the GPU worker's resources to AWS detection."""
    cap = cluster(CPU_HEAD, types={"gpu_worker": {}})
    plan = plan_trial(TuneConfig(cpus_per_trial=1, gpus_per_trial=1), cap)
    assert plan.resources == {"cpu": 1.0, "gpu": 1.0}
    assert "autoscaler node type gpu_worker may have them" in plan.reason
    assert "tune.pending_timeout_s" in plan.reason


def test_unknown_autoscaler_gets_the_intent_too():
    cap = Capacity((CPU_HEAD,), None, source="no autoscaler process on the head node")
    plan = plan_trial(TuneConfig(gpus_per_trial=1), cap)
    assert plan.resources == {"cpu": 1.0, "gpu": 1.0}
    assert "aver cannot tell what the autoscaler can add" in plan.reason
    assert "autoscaler can add: unknown (no autoscaler process on the head node)" in plan.reason


def test_declared_cpus_too_few_with_gpu_undeclared_is_refused():
    cap = cluster(CPU_HEAD, types={"gpu_worker": {"CPU": 4.0}})
    with pytest.raises(ConfigError, match=r"tune\.cpus_per_trial=8"):
        plan_trial(TuneConfig(cpus_per_trial=8, gpus_per_trial=1), cap)


def test_local_ray_without_gpu_runs_on_cpus_with_one_line_naming_the_param():
    cap = Capacity(({"CPU": 2.0, "GPU": 0.0},), {}, local=True)
    plan = plan_trial(TuneConfig(cpus_per_trial=1, gpus_per_trial=1), cap)
    assert plan.resources == {"cpu": 1.0}
    assert plan.reason == (
        "tune.gpus_per_trial=1 but no GPU here: trials run on CPUs "
        "(aver's private local Ray: 1 x {CPU 2, GPU 0})"
    )
    assert "\n" not in plan.reason


def test_local_ray_caps_at_what_this_machine_has():
    cap = Capacity(({"CPU": 2.0, "GPU": 1.0},), {}, local=True)
    plan = plan_trial(TuneConfig(cpus_per_trial=8, gpus_per_trial=2), cap)
    assert plan.resources == {"cpu": 2.0, "gpu": 1.0}
    assert "tune.cpus_per_trial=8 capped at 2" in plan.reason
    assert "tune.gpus_per_trial=2 capped at 1" in plan.reason
    fine = plan_trial(TuneConfig(cpus_per_trial=1, gpus_per_trial=1), cap)
    assert fine.resources == {"cpu": 1.0, "gpu": 1.0} and "capped" not in fine.reason


def test_describe_counts_nodes_and_lists_node_types():
    cap = cluster(CPU_HEAD, {"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}, types=GPU_TYPE)
    assert describe(cap) == (
        "nodes now: 1 x {CPU 0, GPU 0}, 2 x {CPU 4, GPU 1}; "
        "autoscaler can add: gpu_worker {CPU 4, GPU 1}"
    )
    assert "gpu_worker {CPU ?, GPU ?}" in describe(cluster(CPU_HEAD, types={"gpu_worker": {}}))


def test_node_types_of_the_fake_config_are_complete_and_exclude_the_head():
    config = yaml.safe_load((HERE / "fake-autoscaling.yaml").read_text())
    assert node_types(config) == {"gpu_worker": {"CPU": 1.0, "GPU": 1.0}}
    assert node_types({**config, "max_workers": 0}) == {}
    types = {**config["available_node_types"], "off": {"resources": {"CPU": 8}, "max_workers": 0}}
    assert "off" not in node_types({**config, "available_node_types": types})


def test_node_types_of_a_cloud_config_leave_undeclared_resources_unknown():
    config = yaml.safe_load((REPO / "cluster" / "ray-cluster.yaml").read_text())
    types = node_types(config)
    # the shipped config declares its GPU worker, so aver can check a request up front
    assert "head" not in types and types["gpu_worker"] == {"CPU": 4.0, "GPU": 1.0}
    config["available_node_types"]["gpu_worker"]["resources"] = {}
    assert node_types(config)["gpu_worker"] == {}  # undeclared: AWS detects them at launch


def _fake_proc(root: Path, pid: int, argv: list[str], cwd: Path) -> None:
    entry = root / str(pid)
    entry.mkdir(parents=True)
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    os.symlink(cwd, entry / "cwd")


def _monitor(gcs: str, *extra: str) -> list[str]:
    script = "/venv/lib/python3.11/site-packages/ray/autoscaler/_private/monitor.py"
    return ["/venv/bin/python", "-u", script, "--logs-dir=/tmp/x", f"--gcs-address={gcs}", *extra]


def test_autoscaler_config_is_read_from_the_monitor_of_this_cluster(tmp_path):
    proc, cwd = tmp_path / "proc", tmp_path / "home"
    cwd.mkdir()
    (cwd / "mine.yaml").write_text(yaml.safe_dump({"max_workers": 3}))
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"max_workers": 9}))
    _fake_proc(proc, 10, ["/bin/bash"], cwd)
    other = f"--autoscaling-config={tmp_path}/other.yaml"
    _fake_proc(proc, 11, _monitor("10.0.0.1:7000", other), cwd)
    _fake_proc(proc, 12, _monitor("10.0.0.1:6379", "--autoscaling-config=mine.yaml"), cwd)
    (proc / "self").mkdir()
    found = read_autoscaler_config("10.0.0.1:6379", proc=str(proc))
    assert found["monitor"] and found["config"] == {"max_workers": 3}
    assert found["path"] == str(cwd / "mine.yaml")  # relative to the monitor's cwd


def test_read_only_monitor_and_no_monitor(tmp_path):
    proc = tmp_path / "proc"
    _fake_proc(proc, 20, _monitor("127.0.0.1:6379"), tmp_path)
    assert read_autoscaler_config("127.0.0.1:6379", proc=str(proc)) == {
        "monitor": True,
        "path": None,
        "config": None,
    }
    assert not read_autoscaler_config("127.0.0.1:9999", proc=str(proc))["monitor"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not read_autoscaler_config("127.0.0.1:6379", proc=str(empty))["monitor"]


def _trials(*statuses: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(status=s) for s in statuses]


def test_pending_watch_fails_a_sweep_whose_trials_never_start_naming_the_resource():
    watch = PendingWatch(30.0, {"cpu": 1.0, "gpu": 1.0}, "nodes now: 1 x {CPU 0, GPU 0}")
    watch.check(_trials("PENDING", "PENDING"), now=1000.0)  # the clock starts
    watch.check(_trials("PENDING", "PENDING"), now=1029.0)
    with pytest.raises(PendingTimeout) as err:
        watch.check(_trials("PENDING", "PENDING"), now=1031.0)
    message = str(err.value)
    assert "no trial started for 30 s (tune.pending_timeout_s)" in message
    assert "2 trial(s) wait for {CPU: 1, GPU: 1} each" in message
    assert "nodes now: 1 x {CPU 0, GPU 0}" in message and "Fix:" in message


def test_pending_watch_is_quiet_while_trials_run_or_none_wait():
    watch = PendingWatch(30.0, {"cpu": 1.0}, "")
    watch.check(_trials("PENDING"), now=0.0)
    watch.check(_trials("RUNNING", "PENDING"), now=100.0)  # progress: the clock restarts
    watch.check(_trials("TERMINATED", "PENDING"), now=129.0)
    watch.check(_trials("TERMINATED", "TERMINATED"), now=500.0)
    watch.check(_trials("TERMINATED", "PENDING"), now=529.0)
    off = PendingWatch(None, {"cpu": 1.0}, "")
    off.check(_trials("PENDING"), now=0.0)
    off.check(_trials("PENDING"), now=1e9)


def test_pending_timeout_param_is_validated_and_not_part_of_the_sweep_key():
    assert TuneConfig().pending_timeout_s == 1800
    assert TuneConfig(pending_timeout_s=None).pending_timeout_s is None
    for bad in (0, -5):
        with pytest.raises(ConfigError, match=r"tune\.pending_timeout_s"):
            parse_params({"tune": {"pending_timeout_s": bad}})
    a = parse_params({"tune": {"pending_timeout_s": 60}})
    b = parse_params({"tune": {"pending_timeout_s": 600}})
    assert sweep_key(a, "data") == sweep_key(b, "data")

"""The AWS launcher config (cluster/ray-cluster.yaml) and its scripts, checked without AWS.

Ray's own validation (the schema in the installed wheel, after the default-merging `ray up` does
first), then what the schema cannot see: one Python on every node, the venv's `ray`, no data,
stores or venvs synced or uploaded, DVC's S3 plugin and boto3 installed, an MLflow server on the
head's private address that workers log to, GPU workers that scale from zero. The MLflow start
script runs for real on 127.0.0.1. Nothing here talks to AWS (boto3 is made unimportable).
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.support.mlflow_server import answers, free_port

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
CONFIG = CLUSTER / "ray-cluster.yaml"
START_MLFLOW = CLUSTER / "start_mlflow.sh"
TUNE_JOB = CLUSTER / "tune_job.sh"
NODE_REPO = "/home/ubuntu/aver"
VENV_BIN = f"{NODE_REPO}/.venv/bin"
# What must never travel to a node: data, tracking stores, venvs, local DVC state.
NOT_SHIPPED = {
    "/data/",
    "/models/",
    "/reports/",
    "/mlruns.db",
    "/mlartifacts/",
    "/.venv",
    "/.dvc/cache/",
    "/.dvc/tmp/",
}
# Programs that exist on a node only in the venv (or as the wrong Python 3.10 outside it).
VENV_ONLY = {"python", "python3", "pip", "pip3", "ray", "dvc", "mlflow"}
COMMAND_LISTS = (
    "initialization_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any import of the AWS SDK fails: validation must not reach for AWS."""
    for name in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def prepared(raw: dict, no_aws: None) -> dict:
    """The config as `ray up` sees it: merged with the AWS defaults, then validated."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def _programs(cmd: str) -> list[str]:
    """The program each simple command of a shell line runs (after VAR=value and sudo)."""
    out = []
    for part in re.split(r"&&|\|\||[;|()]", cmd):
        words = part.split()
        while words and (re.match(r"^[A-Za-z_]\w*=", words[0]) or words[0] == "sudo"):
            words.pop(0)
        if words:
            out.append(words[0])
    return out


def test_config_passes_rays_own_schema_validation(raw: dict, no_aws: None):
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    assert (Path(ray.autoscaler.__file__).parent / "ray-schema.json").is_file()
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)  # raises on a schema violation
    assert config["provider"]["type"] == "aws" and config["head_node_type"] == "head"
    # The check has teeth: a misspelt key is refused.
    typo = copy.deepcopy(config)
    typo["setup_command"] = typo.pop("setup_commands")
    with pytest.raises(jsonschema.ValidationError):
        validate_config(typo)


def test_every_node_sets_up_one_python_in_the_project_venv(prepared: dict):
    for kind in ("head_setup_commands", "worker_setup_commands"):
        cmds = prepared[kind]
        assert any("install -y python3.11 python3.11-venv" in c for c in cmds), kind
        assert any(
            f"cd {NODE_REPO} && PYTHON=python3.11 bash scripts/setup.sh" in c for c in cmds
        ), kind
    # The job's own venv (on the head, in its --working-dir copy) uses the same interpreter.
    assert "export PYTHON=${PYTHON:-python3.11}" in TUNE_JOB.read_text()
    # One OS image for head and workers.
    images = {t["node_config"]["ImageId"] for t in prepared["available_node_types"].values()}
    assert len(images) == 1
    # Nothing runs a bare python/pip/ray/dvc/mlflow (3.10, or absent, outside the venv);
    # defaults merged in by `ray up` (its head_setup_commands: `pip install boto3`) included.
    for kind in COMMAND_LISTS:
        for cmd in prepared[kind]:
            bare = set(_programs(cmd)) & VENV_ONLY
            assert not bare, f"{kind}: {cmd!r} runs {bare} outside the venv"


def test_start_commands_use_the_venv_ray(prepared: dict):
    assert prepared["file_mounts"] == {NODE_REPO: "."}
    for kind in ("head_start_ray_commands", "worker_start_ray_commands"):
        text = "\n".join(prepared[kind])
        calls = re.findall(r"(\S*\bray) (start|stop)", text)
        assert {verb for _, verb in calls} == {"start", "stop"}, kind
        assert {path for path, _ in calls} == {f"{VENV_BIN}/ray"}, kind
        assert f"export PATH={VENV_BIN}:$PATH" in text, kind  # trials' `dvc pull` finds dvc
    head = prepared["head_start_ray_commands"][-1]
    assert "--head" in head and "--dashboard-host=127.0.0.1" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--address=$RAY_HEAD_IP:6379" in prepared["worker_start_ray_commands"][-1]


def test_nothing_ships_data_stores_or_venvs(prepared: dict):
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    excludes = prepared["rsync_exclude"]
    assert set(excludes) >= NOT_SHIPPED
    # Anchored at the synced directory: "models/" would also drop src/aver/models.
    assert all(p.startswith("/") for p in excludes)
    assert ".gitignore" in prepared["rsync_filter"]
    args = SSHCommandRunner._create_rsync_filter_args(None, prepared)
    for pattern in NOT_SHIPPED:
        assert ["--exclude", pattern] == args[args.index(pattern) - 1 : args.index(pattern) + 1]
    # Jobs upload their working dir with the same list.
    job_env = yaml.safe_load((CLUSTER / "job-runtime-env.yaml").read_text())
    assert job_env["excludes"] == excludes


def test_job_upload_leaves_out_data_stores_and_venvs(tmp_path: Path):
    """Ray's own packaging of `--working-dir .` with the job's runtime_env, on a mock checkout."""
    from ray._private.runtime_env.packaging import create_package

    repo = tmp_path / "repo"
    kept = [
        "dvc.yaml",
        "dvc.lock",
        "params.yaml",
        "requirements.txt",
        "requirements-cluster.txt",
        ".dvc/config",
        "cluster/tune_job.sh",
        "scripts/setup.sh",
        "src/aver/models/msan.py",
        "src/aver/tuning/runner.py",
        "stages/tune.py",
    ]
    dropped = [
        "data/features/index.csv",
        "data/raw/clip.mp4",
        "models/model.pt",
        "reports/metrics.json",
        "mlruns.db",
        "mlartifacts/1/a.bin",
        ".dvc/cache/files/md5/ab/cdef",
        ".dvc/tmp/lock",
        ".dvc/config.local",
        ".git/HEAD",
    ]
    for rel in kept + dropped:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel)
    for rel in (".gitignore", ".dvc/.gitignore"):
        (repo / rel).write_text((REPO / rel).read_text())
    venv = tmp_path / "cached-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (repo / ".venv").symlink_to(venv)  # as scripts/setup.sh links it
    excludes = yaml.safe_load((CLUSTER / "job-runtime-env.yaml").read_text())["excludes"]
    package = tmp_path / "job.zip"
    create_package(str(repo), package, include_gitignore=True, excludes=excludes)
    names = set(zipfile.ZipFile(package).namelist())
    assert set(kept) <= names
    assert not names & set(dropped)
    assert not any(n.startswith(".venv") for n in names)


def test_dvc_s3_and_boto3_pinned_and_installed_where_used(prepared: dict):
    pins = {}
    for line in (REPO / "requirements-cluster.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name] = version
    assert set(pins) == {"dvc-s3", "boto3"}
    # dvc-s3 is the plugin dvc[s3] asks for, for the dvc that requirements.txt pins.
    dvc_pin = re.search(r"^dvc==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert dvc_pin and importlib.metadata.version("dvc") == dvc_pin.group(1)
    s3_extra = [
        Requirement(r)
        for r in importlib.metadata.requires("dvc") or []
        if Requirement(r).name == "dvc-s3"
    ]
    assert s3_extra and Version(pins["dvc-s3"]) in s3_extra[0].specifier
    # Into the venv of every node (workers pull the cache, the head runs the autoscaler).
    install = ".venv/bin/python -m pip install -q -r requirements-cluster.txt"
    for kind in ("head_setup_commands", "worker_setup_commands"):
        assert any(install in c for c in prepared[kind]), kind
    assert any("import boto3, dvc_s3" in c for c in prepared["head_setup_commands"])
    assert install in TUNE_JOB.read_text()  # and into the job's venv


def test_mlflow_on_the_heads_private_address_and_workers_log_there(prepared: dict):
    head = prepared["head_start_ray_commands"]
    workers = prepared["worker_start_ray_commands"]
    mlflow_at = next(i for i, c in enumerate(head) if "bash cluster/start_mlflow.sh" in c)
    ray_at = next(i for i, c in enumerate(head) if f"{VENV_BIN}/ray start" in c)
    # The server first; Ray starts with its env file loaded, so job drivers inherit the URI.
    assert mlflow_at < ray_at and ". ~/aver-cluster.env" in head[ray_at]
    # The script picks the private address itself; nothing forces another bind address.
    everything = "\n".join(head + workers + prepared["head_setup_commands"])
    assert "AVER_MLFLOW_HOST" not in everything and "0.0.0.0" not in everything
    artifacts = r"AVER_MLFLOW_ARTIFACTS=s3://\S+ bash cluster/start_mlflow.sh"
    assert re.search(artifacts, head[mlflow_at])
    port = re.search(r"AVER_MLFLOW_PORT:-(\d+)", START_MLFLOW.read_text()).group(1)
    uri = f"MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:{port}"
    assert uri in workers[-1] and ". ~/aver-cluster.env" in workers[-1]
    assert f"http://$RAY_HEAD_IP:{port}/health" in "\n".join(prepared["worker_setup_commands"])
    # No inbound rules beyond Ray's defaults (intra-cluster, SSH): port 5000 stays inside.
    assert "security_group" not in prepared["provider"]


def test_gpu_workers_scale_from_zero_and_the_head_runs_no_trials(prepared: dict):
    types = prepared["available_node_types"]
    assert types[prepared["head_node_type"]]["resources"] == {"CPU": 0}
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert workers
    for worker in workers:
        assert worker["min_workers"] == 0 and worker["max_workers"] >= 1
        assert worker["resources"].get("GPU", 0) >= 1
        assert worker["node_config"]["InstanceType"].startswith(("g", "p"))
    assert prepared["max_workers"] >= max(w["max_workers"] for w in workers)


def _stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_mlflow_start_script_refuses_wildcard_and_public_addresses(tmp_path: Path):
    subprocess.run(["bash", "-n", str(START_MLFLOW)], check=True)
    for host in ("0.0.0.0", "::", "8.8.8.8", "localhost"):
        env = {
            **os.environ,
            "AVER_MLFLOW_HOST": host,
            "AVER_MLFLOW_DIR": str(tmp_path / "state"),
            "AVER_CLUSTER_ENV": str(tmp_path / "cluster.env"),
            "AVER_PYTHON": sys.executable,
        }
        proc = subprocess.run(
            ["bash", str(START_MLFLOW)], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode != 0 and "refusing to bind" in proc.stderr, host
    assert not (tmp_path / "state" / "mlflow.pid").exists()
    assert not (tmp_path / "cluster.env").exists()


def test_mlflow_start_script_serves_on_loopback_and_restarts(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    state = tmp_path / "state"
    env = {
        **os.environ,
        "AVER_MLFLOW_HOST": "127.0.0.1",
        "AVER_MLFLOW_PORT": str(free_port()),
        "AVER_MLFLOW_DIR": str(state),
        "AVER_CLUSTER_ENV": str(tmp_path / "cluster.env"),
        "AVER_PYTHON": sys.executable,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    pids: list[int] = []
    try:
        for _ in range(2):  # a second `ray up` restarts it
            proc = subprocess.run(
                ["bash", str(START_MLFLOW)], env=env, capture_output=True, text=True, timeout=240
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            pids.append(int((state / "mlflow.pid").read_text()))
            line = (tmp_path / "cluster.env").read_text().strip()
            assert line == f"MLFLOW_TRACKING_URI=http://127.0.0.1:{env['AVER_MLFLOW_PORT']}"
            url = line.split("=", 1)[1]
            assert answers(f"{url}/health")
        assert pids[0] != pids[1] and not _alive(pids[0])
        # A worker's view: runs and artifacts through the server alone (no store credentials).
        client = MlflowClient(tracking_uri=url)
        run = client.create_run(client.create_experiment("aver-demo"))
        client.log_metric(run.info.run_id, "val_uar", 0.5, step=1)
        client.log_text(run.info.run_id, "lr: 0.001\n", "sweep/best_params.yaml")
        assert client.get_run(run.info.run_id).data.metrics == {"val_uar": 0.5}
        assert list((state / "artifacts").rglob("best_params.yaml"))
        assert (state / "mlflow.db").exists()
    finally:
        for pid in pids:
            _stop(pid)


def test_tune_job_pulls_the_cache_before_the_sweep():
    subprocess.run(["bash", "-n", str(TUNE_JOB)], check=True)
    lines = TUNE_JOB.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert "scale.py" not in text  # trials ask for GPUs themselves (aver.tuning.resources)
    assert text.index("dvc pull cache") < text.index("dvc repro --single-item tune")

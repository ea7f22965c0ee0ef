"""scripts/gpu_check.sh (bench/gpu_check.py) on CPU: CPU rows measured, CUDA parts skipped."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from bench.gpu_check import BY_NAME, compare_detections

ENV_FIELDS = (
    "torch",
    "torch_cuda",
    "cuda_available",
    "device_name",
    "capability",
    "bf16_supported",
)


def _run(args: list[str], env: dict[str, str], cwd, timeout: float = 240):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick(tmp_path_factory, venv_env, repo_root):
    """`bash scripts/gpu_check.sh --quick` with OUT set: (process, JSON report)."""
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**venv_env, "OUT": str(out), "PYTHON": sys.executable}
    proc = _run(["bash", "scripts/gpu_check.sh", "--quick"], env, repo_root)
    path = out / "gpu_check.json"
    assert path.exists(), proc.stdout + proc.stderr
    return proc, json.loads(path.read_text())


def test_quick_run_exits_0_and_prints_the_report(quick):
    proc, report = quick
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["exit_code"] == 0 and report["failed"] == []
    assert "aver GPU check (quick)" in proc.stdout
    assert "train-cpu-fp32" in proc.stdout and "gpu_check.json" in proc.stdout


def test_environment_fields(quick):
    env = quick[1]["environment"]
    assert env["status"] == "ok"
    for key in ENV_FIELDS:
        assert key in env
    if not env["cuda_available"]:
        assert env["cuda_reason"].startswith("torch.cuda.is_available() is False")


def test_cpu_training_row(quick):
    rows = {r["name"]: r for r in quick[1]["training"]}
    assert set(rows) == {n for n, p in BY_NAME.items() if p.kind == "training"}
    cpu = rows["train-cpu-fp32"]
    assert cpu["status"] == "ok", cpu
    assert cpu["device"] == "cpu" and not cpu["amp"] and not cpu["compile"]
    assert cpu["loss_finite"] and math.isfinite(cpu["loss_last"])
    assert cpu["clips_per_s"] > 0 and cpu["steps_per_s"] > 0
    assert cpu["model"].startswith("msan")  # params.yaml's default model


def test_cuda_parts_skipped_with_reason(quick):
    report = quick[1]
    if report["cuda_available"]:
        pytest.skip("CUDA is available here: the CUDA parts ran")
    cuda_parts = [
        *[r for r in report["training"] if r["name"] != "train-cpu-fp32"],
        report["ray_trial"],
        report["mtcnn"]["cuda"],
    ]
    assert len(cuda_parts) == 6
    for part in cuda_parts:
        assert part["status"] == "skipped"
        assert part["reason"].startswith("CUDA not available: torch.cuda.is_available()")
    assert "skipped: CUDA not available" in quick[0].stdout


def test_mtcnn_on_cpu(quick):
    mtcnn = quick[1]["mtcnn"]
    assert mtcnn["clips"]["status"] == "ok"
    cpu = mtcnn["cpu"]
    assert cpu["status"] == "ok", cpu
    assert cpu["frames"] > 0 and cpu["frames_per_s"] > 0
    assert cpu["detection_rate"] == 1.0  # the demo faces are easy


def test_a_failing_or_hanging_part_does_not_stop_the_others(tmp_path, venv_env, repo_root):
    env = {**venv_env, "AVER_GPU_CHECK_FAULT": "train-cpu-fp32=hang,demo-clips=raise"}
    out = tmp_path / "r.json"
    only = "train-cpu-fp32,train-cuda-amp,demo-clips,mtcnn-cpu"
    cmd = [sys.executable, "bench/gpu_check.py", "--quick", "--only", only,
           "--part-timeout", "3", "--json", str(out)]  # fmt: skip
    proc = _run(cmd, env, repo_root, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["training"]}
    assert rows["train-cpu-fp32"]["status"] == "timeout"
    assert rows["train-cuda-amp"]["status"] == "skipped"
    assert report["mtcnn"]["clips"]["status"] == "failed"
    assert "injected failure" in report["mtcnn"]["clips"]["reason"]
    assert report["mtcnn"]["cpu"] == {
        "status": "skipped",
        "reason": "needs demo-clips, which did not succeed",
    }
    assert report["failed"] == ["train-cpu-fp32", "demo-clips"]


def test_compare_detections():
    cpu = {"detection_rate": 0.5, "detected": [1, 0], "boxes": [[0, 0, 10, 10], None],
           "frames_per_s": 10.0}  # fmt: skip
    cuda = {**cpu, "boxes": [[0, 0.5, 10, 10.25], None], "frames_per_s": 50.0}
    assert compare_detections(cpu, cuda) == {
        "same_detection_rate": True,
        "same_frames_detected": True,
        "max_box_diff_px": 0.5,
        "speedup": 5.0,
    }


@pytest.mark.slow  # ~40 s: starts a local Ray
def test_ray_trial_plumbing_on_cpu(tmp_path, venv_env, repo_root):
    out = tmp_path / "r.json"
    cmd = [sys.executable, "bench/gpu_check.py", "--quick", "--only", "ray-trial",
           "--ray-allow-cpu", "--json", str(out)]  # fmt: skip
    proc = _run(cmd, venv_env, repo_root, timeout=200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ray = json.loads(out.read_text())["ray_trial"]
    assert ray["status"] == "ok", ray
    assert ray["trial_resources"]["cpu"] >= 1 and len(ray["trials"]) == 1
    assert math.isfinite(ray["trials"][0]["val_uar"])

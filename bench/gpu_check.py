"""GPU check (issue 15.6): environment, training steps, a GPU Ray Tune trial, MTCNN on CUDA.

    bash scripts/gpu_check.sh [--quick]      # PYTHON=... picks the interpreter, OUT=... the folder
    python bench/gpu_check.py [--quick] [--json gpu_check.json] [--only PART,PART]

Each part runs in its own subprocess under its own time budget (and the whole check under
--deadline seconds): a part that fails, crashes or hangs is reported and the others still run.
Parts that need CUDA are reported as skipped, with the reason, when torch sees no CUDA device.

Training rows run aver's own `fit` (which applies train.amp and train.compile, both CUDA-only)
on the default model of params.yaml, with synthetic batches of the feature cache's shapes; the
first epoch is warm-up (includes torch.compile), the second is timed. The Ray part starts local
Ray through aver's `init_ray`, asks for aver's `trial_resources` and checks CUDA inside each
trial. MTCNN runs aver's detector on frames of generated demo clips, on CPU and on CUDA.
Prints a compact report, writes JSON; exits 1 when a part failed or timed out, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Fault injection for tests: "part=hang" or "part=raise", comma separated.
FAULT_ENV = "AVER_GPU_CHECK_FAULT"
MIN_PART_S = 10.0  # a part is not started with less time than this left
NO_CUDA = "CUDA not available"


class CheckFailed(Exception):
    """A part ran but its result is wrong (no GPU in the trial, non-finite loss, ...)."""


@dataclass(frozen=True)
class Part:
    name: str
    kind: str  # environment | training | ray | faces
    budget_s: float
    run: Callable[[argparse.Namespace], dict[str, Any]]
    cuda: bool = False  # needs CUDA
    needs: tuple[str, ...] = field(default=())  # parts that must have succeeded first


# ---------------------------------------------------------------------------------------------
# environment


def _nvidia_smi() -> str:
    """One line per GPU from nvidia-smi (name, driver, memory), or why there is none."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except FileNotFoundError:
        return "not found"
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"not usable ({type(err).__name__})"
    return (out.stdout or out.stderr).strip().replace("\n", "; ")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return ""
    return out.stdout.strip()


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Versions, CUDA availability (or why not), device name, capability and bf16 support."""
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cuda = torch.cuda.is_available()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "aver_commit": _git_commit(),
        "nvidia_smi": _nvidia_smi(),
        "cuda_available": cuda,
        "device_count": torch.cuda.device_count() if cuda else 0,
    }
    for module in ("ray", "facenet_pytorch", "triton"):
        info[module] = _version(module)
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device_name=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            memory_gib=round(props.total_memory / 2**30, 1),
            bf16_supported=bool(torch.cuda.is_bf16_supported()),
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        notes = "; ".join(str(w.message).splitlines()[0] for w in caught)
        info.update(
            device_name=None,
            capability=None,
            bf16_supported=None,
            cuda_reason=(
                f"torch.cuda.is_available() is False (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda}, nvidia-smi: {info['nvidia_smi']})"
                + (f"; {notes}" if notes else "")
            ),
        )
    return info


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class Inputs:
    """Per-clip model input sizes, as the cache stage writes them for these params."""

    audio_frames: int
    audio_dim: int
    video_frames: int
    face_size: int
    n_classes: int
    audio_times: list[float]
    video_fps: float


def model_inputs(params: Any) -> Inputs:
    """Input sizes from params (cache window, features, face size) and the dataset's classes."""
    from aver.datasets import get_dataset
    from aver.features.window import WindowSpec

    spec = WindowSpec.from_config(params.cache, params.extract.sample_rate)
    shapes = spec.shapes()
    ta, dim = shapes["audio"][0]
    tv, side = shapes["video"][0][:2]
    try:
        n_classes = len(get_dataset(params.data.dataset).class_names(params))
    except Exception:  # a folder dataset without its CSV here: the demo's four classes
        n_classes = 4
    return Inputs(
        ta, dim, tv, side, n_classes, spec.audio.frame_times(ta).tolist(), params.cache.video_fps
    )


def synthetic_batches(inputs: Inputs, batch_size: int, n: int, *, pin: bool) -> list[dict]:
    """`n` random model batches in the loader's format (CPU tensors, pinned for CUDA)."""
    import torch

    g = torch.Generator().manual_seed(0)
    b, s = batch_size, inputs.face_size
    a_times = torch.tensor(inputs.audio_times, dtype=torch.float32)
    v_times = (torch.arange(inputs.video_frames, dtype=torch.float32) + 0.5) / inputs.video_fps
    out = []
    for i in range(n):
        batch = {
            "audio": torch.randn(b, inputs.audio_frames, inputs.audio_dim, generator=g),
            "audio_mask": torch.ones(b, inputs.audio_frames, dtype=torch.bool),
            "audio_times": a_times.expand(b, -1).clone(),
            "video": torch.randn(b, inputs.video_frames, 3, s, s, generator=g),
            "video_mask": torch.ones(b, inputs.video_frames, dtype=torch.bool),
            "video_times": v_times.expand(b, -1).clone(),
            "label": torch.randint(0, inputs.n_classes, (b,), generator=g),
        }
        if pin:
            batch = {k: v.pin_memory() for k, v in batch.items()}
        batch["clip_id"] = [f"synthetic-{i}-{j}" for j in range(b)]
        out.append(batch)
    return out


class TimedLoader:
    """Yields `steps` prepared batches per pass (cycling) and records each pass's wall time."""

    def __init__(self, batches: list[dict], steps: int, cuda: bool):
        self.batches, self.steps, self.cuda = batches, steps, cuda
        self.times: list[float] = []

    def __len__(self) -> int:
        return self.steps

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def __iter__(self):
        self._sync()
        start = time.perf_counter()
        for i in range(self.steps):
            yield self.batches[i % len(self.batches)]
        self._sync()  # the loop asks for the next batch after the last step has run
        self.times.append(time.perf_counter() - start)


def measure_fit(params: Any, device: str, steps: int, epochs: int = 2) -> dict[str, Any]:
    """aver's `fit` on synthetic batches: the last epoch's training steps timed, losses checked."""
    import torch

    from aver.config import with_overrides
    from aver.models import build_model
    from aver.training.loop import fit, seed_everything

    params = with_overrides(
        params,
        {"train.epochs": epochs, "train.early_stop_patience": None, "train.device": device},
        "gpu check",
    )
    cfg = params.train
    cuda = device == "cuda"
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    inputs = model_inputs(params)
    model = build_model(
        cfg.model,
        n_classes=inputs.n_classes,
        audio_dim=inputs.audio_dim,
        face_size=inputs.face_size,
    )
    batches = synthetic_batches(inputs, cfg.batch_size, min(steps, 4), pin=cuda)
    train = TimedLoader(batches, steps, cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = fit(model, train, batches[:1], cfg, n_classes=inputs.n_classes, device=device,
                 progress=False)  # fmt: skip
    losses = [float(h["train_loss"]) for h in result.history]
    if not losses or not all(math.isfinite(x) for x in losses):
        raise CheckFailed(f"training loss not finite: {losses}")
    timed = train.times[-1]
    amp_on = cfg.amp and cuda
    return {
        "device": device,
        "amp": amp_on,
        "amp_dtype": (
            ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if amp_on else None
        ),
        "compile": cfg.compile and cuda,
        "model": " ".join(
            str(getattr(cfg.model, k, "")) for k in ("name", "variant", "position")
        ).strip(),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batch_size": cfg.batch_size,
        "inputs": (
            f"audio {inputs.audio_frames}x{inputs.audio_dim}, video {inputs.video_frames}x3x"
            f"{inputs.face_size}x{inputs.face_size}, {inputs.n_classes} classes"
        ),
        "deterministic": cfg.deterministic,
        "steps": steps,
        "warmup_s": round(train.times[0], 3),
        "timed_s": round(timed, 3),
        "steps_per_s": round(steps / timed, 3),
        "clips_per_s": round(steps * cfg.batch_size / timed, 2),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "loss_finite": True,
        "val_uar": float(result.history[-1]["val_uar"]),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
        "torch_threads": torch.get_num_threads(),
    }


def train_row(args: argparse.Namespace, *, device: str, amp: bool, compile_: bool) -> dict:
    """One training row: the default model with train.amp / train.compile set as given."""
    from aver.config import load_params, with_overrides

    overrides: dict[str, Any] = {"train.amp": amp, "train.compile": compile_}
    if args.quick and device == "cpu":
        overrides["train.batch_size"] = 4
    params = with_overrides(load_params(args.params), overrides, "gpu check")
    quick_steps, full_steps = (1, 5) if device == "cpu" else (5, 100)
    steps = quick_steps if args.quick else full_steps
    return measure_fit(params, device, steps)


# ---------------------------------------------------------------------------------------------
# Ray Tune


def _gpu_trial(config: dict, *, base: dict, require_gpu: bool, steps: int) -> None:
    """A Ray Tune trial: CUDA must be visible; the sampled params train a few steps with `fit`."""
    import torch
    from ray import tune

    from aver.config import parse_params, with_overrides

    cuda = torch.cuda.is_available()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if require_gpu and not cuda:
        raise RuntimeError(
            f"torch.cuda.is_available() is False inside the trial (CUDA_VISIBLE_DEVICES="
            f"{visible!r})"
        )
    params = with_overrides(parse_params(base), config, "tune.space")
    row = measure_fit(params, "cuda" if cuda else "cpu", steps, epochs=1)
    tune.report(
        {
            "val_uar": row["val_uar"],
            "train_loss": row["loss_last"],
            "clips_per_s": row["clips_per_s"],
            "cuda": cuda,
            "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
            "cuda_visible_devices": visible,
        }
    )


def ray_trial(args: argparse.Namespace) -> dict[str, Any]:
    """A tiny sweep of tune.space on local Ray (aver's init_ray), each trial asking for a GPU."""
    import ray
    from ray import tune

    from aver.config import load_params
    from aver.tuning.resources import trial_resources
    from aver.tuning.runner import init_ray
    from aver.tuning.space import build_space

    params = load_params(args.params)
    require_gpu = not args.ray_allow_cpu
    cluster = init_ray(params)
    try:
        resources = trial_resources(params.tune, cluster)
        if require_gpu and resources.get("gpu", 0) <= 0:
            raise CheckFailed(
                f"trial_resources asks for no GPU: Ray sees {cluster.get('GPU', 0)} GPU(s), "
                f"tune.gpus_per_trial={params.tune.gpus_per_trial}"
            )
        n = 1 if args.quick else 2
        trainable = tune.with_resources(
            tune.with_parameters(
                _gpu_trial,
                base=params.model_dump(),
                require_gpu=require_gpu,
                steps=2 if args.quick else 20,
            ),
            resources,
        )
        tuner = tune.Tuner(
            trainable,
            param_space=build_space(params.tune.space),
            tune_config=tune.TuneConfig(
                metric="val_uar", mode="max", num_samples=n, max_concurrent_trials=1
            ),
            run_config=tune.RunConfig(
                name="gpu-check",
                storage_path=str(Path(args.work).resolve() / "ray"),
                failure_config=tune.FailureConfig(max_failures=0),
                verbose=0,
            ),
        )
        results = tuner.fit()
        errors = [str(r.error).splitlines()[-1] for r in results if r.error]
        if errors:
            raise CheckFailed(f"{len(errors)} of {n} trial(s) failed: {errors[0]}")
        keys = ("device_name", "cuda", "cuda_visible_devices", "val_uar", "clips_per_s")
        trials = [{k: r.metrics.get(k) for k in keys} for r in results]
        if require_gpu and not all(t["cuda"] for t in trials):
            raise CheckFailed(f"a trial ran without CUDA: {trials}")
        return {
            "cluster": {k: cluster.get(k, 0.0) for k in ("CPU", "GPU")},
            "trial_resources": resources,
            "trials": trials,
            "gpu_seen": trials[0]["device_name"],
        }
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------
# MTCNN


def demo_clips(args: argparse.Namespace) -> dict[str, Any]:
    """Write a few demo clips (aver's generator: talking faces, H.264) under the work folder."""
    from aver.config import DemoConfig, load_params
    from aver.datasets.demo import plan_clips, render_media, speaker_appearance, write_mp4

    params = load_params(args.params)
    n, duration = (1, 0.6) if args.quick else (2, 2.0)
    cfg = DemoConfig(**{**params.data.demo.model_dump(), "duration_s": duration})
    plan = plan_clips(cfg)
    picks = [
        next(c for c in plan if c.speaker == s and c.emotion == emotion)
        for s, emotion in zip(range(n), ("happy", "sad"))
    ]
    paths = []
    for clip in picks:
        look = speaker_appearance(cfg.seed, clip.speaker, cfg.size)
        frames, audio = render_media(clip, look, cfg)
        path = Path(args.work).resolve() / "demo" / f"{clip.clip_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, frames, audio, cfg.fps, cfg.sample_rate)
        paths.append(str(path))
    return {"clips": paths, "duration_s": duration, "size": cfg.size, "fps": cfg.fps}


def mtcnn_rate(args: argparse.Namespace, *, device: str) -> dict[str, Any]:
    """aver's MTCNN detector (align params) on every frame of the demo clips: frames/s, rate."""
    import numpy as np
    import torch

    from aver.config import AlignConfig, load_params
    from aver.faces.detectors import detect_frames, make_detector
    from aver.faces.pipeline import iter_sampled

    params = load_params(args.params)
    cfg = AlignConfig(**{**params.align.model_dump(), "detector": "mtcnn", "device": device})
    clips = json.loads((Path(args.work) / "demo-clips.json").read_text())["clips"]
    frames = [
        frame.to_ndarray(format="rgb24")
        for path in clips
        for _, _, frame in iter_sampled(path, cfg.sample_fps)
    ]
    if args.quick:
        frames = frames[:6]
    detector = make_detector(cfg)

    def detect(batch: list) -> list:
        return detect_frames(detector, batch, max_side=cfg.detect_side, batch_size=cfg.batch_size)

    detect(frames[: 1 if args.quick else cfg.batch_size])  # warm-up (CUDA context, kernels)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    dets = detect(frames)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    found = [int(len(d) > 0) for d in dets]
    boxes = [d.boxes[int(np.argmax(d.scores))].round(2).tolist() if len(d) else None for d in dets]
    return {
        "device": device,
        "frames": len(frames),
        "frame_size": list(frames[0].shape[:2]) if frames else None,
        "batch_size": cfg.batch_size,
        "detect_side": cfg.detect_side,
        "detect_s": round(seconds, 3),
        "frames_per_s": round(len(frames) / seconds, 2),
        "detection_rate": round(sum(found) / max(1, len(found)), 4),
        "detected": found,
        "boxes": boxes,
    }


def compare_detections(cpu: dict[str, Any], cuda: dict[str, Any]) -> dict[str, Any]:
    """Same detection rate and same frames detected on both devices; largest box difference."""
    pairs = [(a, b) for a, b in zip(cpu.get("boxes", []), cuda.get("boxes", [])) if a and b]
    diff = max((abs(x - y) for a, b in pairs for x, y in zip(a, b)), default=None)
    return {
        "same_detection_rate": cpu["detection_rate"] == cuda["detection_rate"],
        "same_frames_detected": cpu["detected"] == cuda["detected"],
        "max_box_diff_px": None if diff is None else round(diff, 2),
        "speedup": round(cuda["frames_per_s"] / cpu["frames_per_s"], 2),
    }


# ---------------------------------------------------------------------------------------------
# parts and orchestration

# In order of priority: once --deadline is near, the parts left are skipped.
PARTS: tuple[Part, ...] = (
    Part("environment", "environment", 60, environment),
    Part("train-cpu-fp32", "training", 90, partial(train_row, device="cpu", amp=False,
                                                   compile_=False)),
    Part("train-cuda-fp32", "training", 60, partial(train_row, device="cuda", amp=False,
                                                    compile_=False), cuda=True),
    Part("train-cuda-amp", "training", 60, partial(train_row, device="cuda", amp=True,
                                                   compile_=False), cuda=True),
    Part("train-cuda-compile", "training", 150, partial(train_row, device="cuda", amp=False,
                                                        compile_=True), cuda=True),
    Part("ray-trial", "ray", 120, ray_trial, cuda=True),
    Part("demo-clips", "faces", 60, demo_clips),
    Part("mtcnn-cpu", "faces", 90, partial(mtcnn_rate, device="cpu"), needs=("demo-clips",)),
    Part("mtcnn-cuda", "faces", 60, partial(mtcnn_rate, device="cuda"), cuda=True,
         needs=("demo-clips",)),
    Part("train-cuda-compile-amp", "training", 150, partial(train_row, device="cuda", amp=True,
                                                            compile_=True), cuda=True),
)  # fmt: skip
BY_NAME = {p.name: p for p in PARTS}


def run_part(part: Part, args: argparse.Namespace) -> None:
    """Child process: run one part, write its result (status ok / failed) as JSON."""
    fault = dict(f.split("=", 1) for f in os.environ.get(FAULT_ENV, "").split(",") if "=" in f)
    start = time.perf_counter()
    try:
        if fault.get(part.name) == "hang":
            time.sleep(3600)
        if fault.get(part.name) == "raise":
            raise RuntimeError(f"injected failure ({FAULT_ENV})")
        out = {"status": "ok", **part.run(args)}
    except Exception as err:
        out = {
            "status": "failed",
            "reason": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=-4),
        }
    out["seconds"] = round(time.perf_counter() - start, 2)
    Path(args.result).write_text(json.dumps(out, indent=1, default=str))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.pop("RAY_ADDRESS", None)  # the Ray part checks a local Ray on this machine
    return env


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def spawn(part: Part, args: argparse.Namespace, work: Path, timeout: float) -> dict[str, Any]:
    """Run `part` in a subprocess (own session); kill its process group past `timeout`."""
    result, log = work / f"{part.name}.json", work / f"{part.name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part.name,
           "--result", str(result), "--work", str(work), "--params", str(args.params)]  # fmt: skip
    cmd += ["--quick"] * args.quick + ["--ray-allow-cpu"] * args.ray_allow_cpu
    start = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=_child_env(), start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {
                "status": "timeout",
                "reason": f"no result within its {timeout:.0f} s budget (killed)",
                "seconds": round(time.monotonic() - start, 2),
                "log_tail": _tail(log),
            }
    if result.exists():
        out = json.loads(result.read_text())
    else:
        out = {"status": "failed", "reason": f"the part process exited with code {code}"}
    if out["status"] != "ok":
        out["log_tail"] = _tail(log)
    out["wall_s"] = round(time.monotonic() - start, 2)
    return out


def skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


def run_all(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """Every selected part in order, each under min(its budget, time left before --deadline)."""
    only = set(args.only.split(",")) if args.only else set(BY_NAME)
    deadline = time.monotonic() + args.deadline
    results: dict[str, dict[str, Any]] = {}
    cuda, cuda_reason = False, "the environment part did not run"
    for part in PARTS:
        if part.name not in only:
            continue
        left = deadline - time.monotonic()
        missing = [n for n in part.needs if results.get(n, {}).get("status") != "ok"]
        cpu_ok = part.kind == "ray" and args.ray_allow_cpu
        if part.cuda and not cuda and not cpu_ok:
            results[part.name] = skipped(f"{NO_CUDA}: {cuda_reason}")
        elif missing:
            results[part.name] = skipped(f"needs {', '.join(missing)}, which did not succeed")
        elif left < MIN_PART_S:
            results[part.name] = skipped(f"time budget spent (--deadline {args.deadline:.0f} s)")
        else:
            budget = min(part.budget_s, args.part_timeout or part.budget_s, left)
            results[part.name] = spawn(part, args, work, budget)
        res = results[part.name]
        if part.name == "environment":
            cuda = bool(res.get("cuda_available"))
            cuda_reason = res.get("cuda_reason") or res.get("reason", "")
        took = res.get("wall_s", res.get("seconds", 0.0))
        print(f"[gpu-check] {part.name}: {res['status']} ({took:.1f} s)", file=sys.stderr)
    return results


def build_report(args: argparse.Namespace, results: dict[str, dict], total_s: float) -> dict:
    """Group part results into the report: environment, training rows, Ray trial, MTCNN."""
    rows = {n: r for n, r in results.items() if BY_NAME[n].kind == "training"}
    mtcnn: dict[str, Any] = {
        "clips": results.get("demo-clips"),
        "cpu": results.get("mtcnn-cpu"),
        "cuda": results.get("mtcnn-cuda"),
    }
    cpu, gpu = mtcnn["cpu"] or {}, mtcnn["cuda"] or {}
    if cpu.get("status") == "ok" and gpu.get("status") == "ok":
        mtcnn["comparison"] = compare_detections(cpu, gpu)
    for row in (cpu, gpu):
        row.pop("boxes", None)
    failed = [n for n, r in results.items() if r["status"] in ("failed", "timeout")]
    env = results.get("environment", {})
    return {
        "check": "aver gpu check",
        "started": args.started,
        "quick": args.quick,
        "total_s": round(total_s, 1),
        "deadline_s": args.deadline,
        "cuda_available": bool(env.get("cuda_available")),
        "environment": env,
        "training": [{"name": n, **r} for n, r in rows.items()],
        "ray_trial": results.get("ray-trial"),
        "mtcnn": mtcnn,
        "failed": failed,
        "exit_code": 1 if failed else 0,
    }


def _status(res: dict | None) -> str:
    if not res:
        return "not run"
    if res["status"] == "ok":
        return "ok"
    if res.get("reason", "").startswith(NO_CUDA):
        return f"skipped: {NO_CUDA} (see environment)"
    return f"{res['status']}: {res.get('reason', '')}"


def format_report(report: dict) -> str:
    """The compact text report printed at the end."""
    env = report["environment"]
    lines = [f"aver GPU check{' (quick)' if report['quick'] else ''}, {report['started']}"]
    if env.get("status") == "ok":
        lines.append(
            f"environment: python {env['python']}, torch {env['torch']} (CUDA build "
            f"{env['torch_cuda']}), {env['cpu_count']} CPUs, commit {env['aver_commit']}"
        )
        if env["cuda_available"]:
            lines.append(
                f"  CUDA: {env['device_name']}, capability {env['capability']}, "
                f"{env['memory_gib']} GiB, bf16 {env['bf16_supported']}, {env['nvidia_smi']}"
            )
        else:
            lines.append(f"  CUDA: not available: {env['cuda_reason']}")
    else:
        lines.append(f"environment: {_status(env)}")
    first = next((r for r in report["training"] if r["status"] == "ok"), None)
    lines.append(
        "training (aver fit, synthetic batches"
        + (f": {first['model']}, batch {first['batch_size']}, {first['inputs']})" if first else ")")
    )
    lines.append(f"  {'row':<24}{'steps/s':>9}{'clips/s':>10}{'loss':>8}{'warm-up s':>11}")
    for r in report["training"]:
        if r["status"] == "ok":
            lines.append(
                f"  {r['name']:<24}{r['steps_per_s']:>9.2f}{r['clips_per_s']:>10.1f}"
                f"{r['loss_last']:>8.3f}{r['warmup_s']:>11.1f}"
            )
        else:
            lines.append(f"  {r['name']:<24}{_status(r)}")
    ray = report["ray_trial"]
    if ray and ray["status"] == "ok":
        lines.append(
            f"ray trial: ok, {len(ray['trials'])} trial(s) with {ray['trial_resources']}, "
            f"GPU seen in trial: {ray['gpu_seen']}"
        )
    else:
        lines.append(f"ray trial: {_status(ray)}")
    m = report["mtcnn"]
    lines.append(f"mtcnn (demo clips: {_status(m['clips'])})")
    for dev in ("cpu", "cuda"):
        r = m[dev]
        if r and r["status"] == "ok":
            lines.append(
                f"  {dev:<5}{r['frames']} frames, {r['frames_per_s']:.1f} frames/s, "
                f"detection rate {r['detection_rate']:.3f}"
            )
        else:
            lines.append(f"  {dev:<5}{_status(r)}")
    if "comparison" in m:
        lines.append(f"  cpu vs cuda: {m['comparison']}")
    failed = report["failed"]
    lines.append(
        f"total {report['total_s']:.0f} s; "
        + (f"FAILED: {', '.join(failed)}" if failed else "no part failed")
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few steps and frames (CPU, CI)")
    ap.add_argument("--json", default="gpu_check.json", help="where to write the JSON report")
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--only", default="", help=f"comma-separated parts of: {','.join(BY_NAME)}")
    ap.add_argument("--deadline", type=float, default=450.0, help="seconds for the whole check")
    ap.add_argument("--part-timeout", type=float, default=None, help="cap on every part's budget")
    ap.add_argument("--ray-allow-cpu", action="store_true", help="Ray trial without a GPU (tests)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, clips)")
    ap.add_argument("--part", choices=sorted(BY_NAME), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    unknown = set(filter(None, args.only.split(","))) - set(BY_NAME)
    if unknown:
        ap.error(f"--only: unknown part(s) {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.part:
        run_part(BY_NAME[args.part], args)
        return 0
    args.started = datetime.now(UTC).isoformat(timespec="seconds")
    args.params = str(Path(args.params).resolve())
    work = Path(tempfile.mkdtemp(prefix="aver-gpu-check-"))
    start = time.monotonic()
    try:
        results = run_all(args, work)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    report = build_report(args, results, time.monotonic() - start)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(format_report(report))
    print(f"JSON: {out}" + (f"; work folder kept: {work}" if args.keep else ""))
    return report["exit_code"]


if __name__ == "__main__":
    sys.exit(main())

"""Real-scale run: N demo clips through the pipeline, with time, memory and disk per stage.

Copies this checkout into a throw-away git repo, sets the demo dataset to about `--clips` clips
(24 speakers like RAVDESS, `--duration` seconds each), and runs each stage up to `--until` with
`dvc repro -s <stage>` (the real stage code, as `dvc repro` runs it). For each stage it reports
wall time, peak RSS of the stage's whole process tree (sampled) and of its largest process,
bytes on disk of the stage's outputs (and per hour of video), and the DVC cache; and, over the
whole run, the peak bytes on disk of the workspace data and the DVC cache together (sampled).

    python bench/scale.py --clips 1500 --workdir /tmp/aver-scale
    python bench/scale.py --clips 60 --duration 2 --until evaluate   # a quick proof
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aver import cli  # noqa: E402
from tests.support.pipeline import (  # noqa: E402
    interpreter_env,
    make_pipeline_repo,
    pipeline_env,
)

STAGES = list(cli.STAGES)
CLASSES = 4  # the demo dataset's classes
SPEAKERS = 24
SAMPLE_S = 0.25


@dataclass
class StageRun:
    stage: str
    wall_s: float
    tree_rss: int  # peak summed RSS of the stage's process tree, bytes
    max_rss: int  # peak RSS of its largest process, bytes
    out_bytes: int
    peak_disk: int  # peak data + DVC cache bytes while the stage ran


def demo_size(clips: int) -> tuple[int, int]:
    """(speakers, clips per class) giving about `clips` clips: 24 speakers, or fewer when small."""
    speakers = min(SPEAKERS, max(3, clips // CLASSES))
    return speakers, max(1, round(clips / (CLASSES * speakers)))


def disk_bytes(*paths: Path) -> int:
    """Bytes allocated on disk under the paths (st_blocks; hard links and symlinks once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        files = [str(top)] if top.is_file() else []
        for dirpath, _dirs, names in os.walk(top):
            files += [os.path.join(dirpath, n) for n in names]
        for path in files:
            try:
                st = os.lstat(path)
            except OSError:  # removed while walking
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(sum, max) RSS of a process and its descendants, bytes."""
    sizes = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            sizes.append(p.memory_info().rss)
        except psutil.Error:
            continue
    return sum(sizes), max(sizes, default=0)


def run_stage(stage: str, repo: Path, env: dict[str, str], watched: list[Path]) -> StageRun:
    """`dvc repro -s <stage>`, sampling the process tree's RSS and the watched folders' bytes."""
    peaks = {"tree": 0, "max": 0, "disk": 0}
    done = threading.Event()

    def sample_disk() -> None:
        while not done.is_set():
            peaks["disk"] = max(peaks["disk"], disk_bytes(*watched))
            done.wait(1.0)

    log = repo / f"scale-{stage}.log"
    start = time.perf_counter()
    with open(log, "w") as fh:
        child = subprocess.Popen(
            ["dvc", "repro", "-s", stage], cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT
        )
        disk = threading.Thread(target=sample_disk, daemon=True)
        disk.start()
        proc = psutil.Process(child.pid)
        while child.poll() is None:
            tree, largest = _tree_rss(proc)
            peaks["tree"], peaks["max"] = max(peaks["tree"], tree), max(peaks["max"], largest)
            time.sleep(SAMPLE_S)
    wall = time.perf_counter() - start
    done.set()
    disk.join()
    peaks["disk"] = max(peaks["disk"], disk_bytes(*watched))
    if child.returncode != 0:
        raise SystemExit(f"dvc repro -s {stage} failed; see {log}:\n{log.read_text()[-4000:]}")
    outs = _outs(repo, stage)
    return StageRun(stage, wall, peaks["tree"], peaks["max"], disk_bytes(*outs), peaks["disk"])


def _outs(repo: Path, stage: str) -> list[Path]:
    """The stage's outputs and metrics, from dvc.yaml."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage]
    names = []
    for key in ("outs", "metrics"):
        for item in spec.get(key, []):
            names.append(next(iter(item)) if isinstance(item, dict) else item)
    return [repo / n for n in names]


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1500, help="about this many demo clips")
    ap.add_argument("--duration", type=float, default=3.7, help="seconds per clip (RAVDESS: 3.7)")
    ap.add_argument("--until", choices=STAGES, default="cache", help="last stage to run")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="stage workers")
    ap.add_argument("--epochs", type=int, default=1, help="train.epochs (train runs fold 0)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/aver-scale"))
    args = ap.parse_args()
    speakers, per_class = demo_size(args.clips)
    overrides = {
        "data": {
            "dataset": "demo",
            "demo": {
                "speakers": speakers,
                "clips_per_class": per_class,
                "duration_s": args.duration,
                "workers": args.workers,
            },
        },
        "extract": {"workers": args.workers},
        "align": {"workers": args.workers},
        "train": {"use_tuned": False, "epochs": args.epochs, "folds": [0]},
    }
    shutil.rmtree(args.workdir, ignore_errors=True)
    repo = make_pipeline_repo(args.workdir / "repo", overrides)
    env = pipeline_env(interpreter_env(), repo)
    cache = repo / ".dvc" / "cache"
    watched = [repo / "data", repo / "models", repo / "reports", cache]
    stages = STAGES[: STAGES.index(args.until) + 1]
    runs = []
    for stage in stages:
        run = run_stage(stage, repo, env, watched)
        runs.append(run)
        print(
            f"{stage}: {run.wall_s:.1f} s, tree RSS {_mb(run.tree_rss)} MiB, "
            f"out {_mb(run.out_bytes)} MiB",
            file=sys.stderr,
            flush=True,
        )
    clips = (repo / "data/raw/index.csv").read_text().count("\n") - 1
    hours = clips * args.duration / 3600
    print(
        f"\n`python bench/scale.py --clips {args.clips} --duration {args.duration:g} "
        f"--until {args.until}`: {clips} clips ({speakers} speakers), {hours:.2f} h of video, "
        f"{args.workers} workers, {os.cpu_count()} cores\n"
    )
    print(
        "| stage | wall s | peak RSS MiB (tree) | peak RSS MiB (largest) | output MiB "
        "| output MiB per hour | peak disk MiB (data + DVC cache) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        per_hour = _mb(r.out_bytes / hours) if hours else "-"
        print(
            f"| {r.stage} | {r.wall_s:.1f} | {_mb(r.tree_rss)} | {_mb(r.max_rss)} | "
            f"{_mb(r.out_bytes)} | {per_hour} | {_mb(r.peak_disk)} |"
        )
    total = sum(r.wall_s for r in runs)
    peak = max(r.peak_disk for r in runs)
    print(
        f"| **total** | **{total:.1f}** | | | {_mb(disk_bytes(*watched[:3]))} (workspace) | | "
        f"**{_mb(peak)}** |"
    )
    print(
        f"\nDVC cache at the end: {_mb(disk_bytes(cache))} MiB; "
        f"per hour of video {_mb(disk_bytes(cache) / hours) if hours else '-'} MiB; "
        f"{math.ceil(total / 60)} min in all"
    )


if __name__ == "__main__":
    main()

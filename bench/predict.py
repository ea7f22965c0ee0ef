"""`aver predict` real-time factor (wall time / video duration, start-up included) per step.

Two measures, each in fresh processes as a user runs them (goals of issue 20):
- one clip: `aver predict VIDEO --model model.pt --json --profile` on a 3 s (and a 60 s)
  1280x720 clip; goal: real-time factor < 1 for the 3 s clip;
- a directory of `--dir` (20) different 3 s clips in one call
  (`aver predict DIR --output results.jsonl --profile`): wall / total duration; goal < 0.2.
  `--per-file-process` also scores the same clips one process per file (how a directory was
  scored before `aver predict` took many files), in the same run. `--src` runs another
  checkout's code (e.g. a worktree of the commit before) for a before/after of one clip.
The CPU seconds of each run (children's user + sys) are printed too: on a shared machine they
move less than wall times.

For one clip the profile line gives the seconds of each step: start-up (from the process's
start to `aver predict`'s main: the interpreter, aver's and torch's imports), import (what was
left to import), probe, model load, detector build, extract (in a thread beside the detector
build: the two overlap), detect + track, align, features, network; "rest" is the wall time
left (printing, exit, the process launch; negative by the overlap).
The clips are 1280x720 H.264 + AAC at 30 fps: a RAVDESS clip from
../shared/data/real-clips when present (cut to 3 s, and looped to 60 s), else a generated
demo face scaled up. The model is the default msan of params.yaml with random weights (speed
does not depend on the weights' values).

    .venv/bin/python bench/predict.py --repeats 3 --per-file-process   # the figures
    .venv/bin/python bench/predict.py --seconds 3 --dir 3               # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.model_files import demo_clips, write_model_file  # noqa: E402
from tests.support.real_clips import REAL_CLIPS  # noqa: E402

STEPS = [
    "start-up", "import", "probe", "model load", "detector build", "extract", "detect + track",
    "align", "features", "network", "rest",
]  # fmt: skip


def source_clip(work: Path) -> tuple[Path, str]:
    """A talking-face clip to cut the bench clips from, and what it is."""
    ravdess = sorted((REAL_CLIPS / "ravdess").glob("01-01-*.mp4"))
    if ravdess:
        return ravdess[0], f"RAVDESS {ravdess[0].name}"
    return demo_clips(work, duration_s=4.0, size=360)["happy"], "generated demo face"


def make_clip(src: Path, seconds: float, out: Path, offset_s: float = 0.0) -> Path:
    """`src` looped as needed to `seconds` (from `offset_s` on), 1280x720 30 fps H.264 + AAC."""
    from aver.media.ffmpeg import ffmpeg_exe

    vf = "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2"
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src)]
    cmd += [
        "-ss",
        f"{offset_s:.3f}",
        "-t",
        str(seconds),
        "-vf",
        vf,
        "-r",
        "30",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
    ]
    cmd += ["-pix_fmt", "yuv420p", "-c:a", "aac", str(out)]
    subprocess.run(cmd, check=True)
    return out


def run_aver(args: list[str], src: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """`python -m aver.cli predict ARGS` with `src` on PYTHONPATH: the process, its wall and
    CPU seconds (user + sys)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-m", "aver.cli", "predict", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # run in src's checkout: the `aver` command re-executes with the code of the workspace it
    # is started in (aver.workspace), so another cwd would measure that checkout's code instead
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=src.resolve().parent)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def profile_of(stderr: str) -> dict[str, float]:
    return json.loads(stderr.split("[predict] profile: ")[1].splitlines()[0])


def predict_once(video: Path, model: Path, src: Path) -> dict[str, float]:
    """Wall seconds of one `aver predict` process and its profile (seconds per step)."""
    proc, wall, cpu = run_aver([str(video), "--model", str(model), "--json", "--profile"], src)
    if proc.returncode != 0:
        raise SystemExit(f"aver predict failed:\n{proc.stderr[-3000:]}")
    profile = profile_of(proc.stderr)
    doc = json.loads(proc.stdout)
    return {
        "wall": wall, "cpu": cpu, "duration": doc["duration_s"], "windows": len(doc["windows"]),
        "rest": wall - sum(profile.values()), **profile,
    }  # fmt: skip


def predict_dir(folder: Path, model: Path, src: Path, duration: float) -> dict[str, float]:
    """One `aver predict DIR` call over every clip: wall, CPU, per clip and real-time factor."""
    out = folder.parent / "results.jsonl"
    args = [str(folder), "--model", str(model), "--output", str(out), "--profile"]
    proc, wall, cpu = run_aver(args, src)
    if proc.returncode != 0:
        raise SystemExit(f"aver predict DIR failed:\n{proc.stderr[-3000:]}")
    n = len(out.read_text().splitlines())
    per_file = [float(line.rsplit("(", 1)[1].split(" s)")[0]) for line in proc.stderr.splitlines()
                if line.startswith("[predict] ") and line.endswith(" s)")]  # fmt: skip
    later = per_file[1:] or per_file
    return {
        "wall": wall, "cpu": cpu, "clips": n, "per clip": wall / n, "rtf": wall / duration,
        "per clip after the first": sum(later) / len(later),
        "start-up": profile_of(proc.stderr).get("start-up", 0.0),
    }  # fmt: skip


def predict_each(clips: list[Path], model: Path, src: Path, duration: float) -> dict[str, float]:
    """The same clips, one `aver predict VIDEO` process each (before many files per call)."""
    walls, cpus = [], []
    for clip in clips:
        proc, wall, cpu = run_aver([str(clip), "--model", str(model), "--json"], src)
        if proc.returncode != 0:
            raise SystemExit(f"aver predict failed:\n{proc.stderr[-3000:]}")
        walls.append(wall)
        cpus.append(cpu)
    n = len(clips)
    return {
        "wall": sum(walls), "cpu": sum(cpus), "clips": n, "per clip": sum(walls) / n,
        "rtf": sum(walls) / duration,
    }  # fmt: skip


def table(rows: dict[str, dict[str, float]]) -> str:
    names = list(rows)
    lines = [
        "| step (s) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for step in STEPS:
        cells = [f"{rows[n].get(step, 0.0):.2f}" for n in names]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines.append("| **wall** | " + " | ".join(f"**{rows[n]['wall']:.2f}**" for n in names) + " |")
    lines.append(
        "| CPU (user + sys) | " + " | ".join(f"{rows[n]['cpu']:.2f}" for n in names) + " |"
    )
    lines.append(
        "| **real-time factor** (wall / duration) | "
        + " | ".join(f"**{rows[n]['wall'] / rows[n]['duration']:.2f}**" for n in names)
        + " |"
    )
    return "\n".join(lines)


def dir_table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| clips of 3 s, 1280x720 | wall (s) | CPU (s) | per clip (s) | real-time factor |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['per clip']:.2f} | "
            f"**{r['rtf']:.2f}** |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="*", default=[3.0, 60.0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per clip (the fastest kept)")
    parser.add_argument("--dir", type=int, default=20, help="clips in the directory (0: none)")
    parser.add_argument(
        "--per-file-process",
        action="store_true",
        help="also score the directory one process per clip",
    )
    parser.add_argument("--src", type=Path, default=REPO / "src", help="the aver code to run")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aver-bench-predict-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src, what = source_clip(work)
        model = write_model_file(work / "model.pt", small=False)
        print(f"source: {what}; code: {args.src}; {os.cpu_count()} cpus", file=sys.stderr)
        rows = {}
        for seconds in args.seconds:
            video = make_clip(src, seconds, work / f"clip_{seconds:g}s.mp4")
            runs = [predict_once(video, model, args.src) for _ in range(args.repeats)]
            best = min(runs, key=lambda r: r["wall"])
            rows[f"{seconds:g} s clip ({best['windows']:.0f} windows)"] = best
            print(json.dumps(best), file=sys.stderr)
        if rows:
            print(table(rows))
        if args.dir:
            folder = work / "clips"
            folder.mkdir(exist_ok=True)
            clips = [
                make_clip(src, 3.0, folder / f"clip_{k:02d}.mp4", offset_s=0.1 * k)
                for k in range(args.dir)
            ]
            duration = 3.0 * len(clips)
            dirs = {f"{len(clips)} clips, one call": predict_dir(folder, model, args.src, duration)}
            if args.per_file_process:
                name = f"{len(clips)} clips, one process per clip"
                dirs[name] = predict_each(clips, model, args.src, duration)
            for name, r in dirs.items():
                print(json.dumps({name: r}), file=sys.stderr)
            print()
            print(dir_table(dirs))


if __name__ == "__main__":
    main()

"""`aver predict` real-time factor (wall time / video duration, start-up included) per step.

Each clip is predicted by `aver predict VIDEO --model model.pt --json --profile` in a fresh
process, as a user runs it; the profile line gives the seconds of each step: start-up (from
the process's start to `aver predict`'s main: the interpreter, aver's and torch's imports),
import (what was left to import), probe, model load, detector build, extract, detect + track,
align, features, network; "rest" is the wall time left (printing, exit, the process launch).
The clips are 1280x720 H.264 + AAC at 30 fps: a RAVDESS clip from
../shared/data/real-clips when present (cut to 3 s, and looped to 60 s), else a generated
demo face scaled up. The model is the default msan of params.yaml with random weights (speed
does not depend on the weights' values).

    .venv/bin/python bench/predict.py --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
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


def make_clip(src: Path, seconds: float, out: Path) -> Path:
    """`src` looped as needed to `seconds`, 1280x720 30 fps H.264 + AAC."""
    from aver.media.ffmpeg import ffmpeg_exe

    vf = "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2"
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src)]
    cmd += ["-t", str(seconds), "-vf", vf, "-r", "30", "-c:v", "libx264", "-preset", "veryfast"]
    cmd += ["-pix_fmt", "yuv420p", "-c:a", "aac", str(out)]
    subprocess.run(cmd, check=True)
    return out


def predict_once(video: Path, model: Path) -> dict[str, float]:
    """Wall seconds of one `aver predict` process and its profile (seconds per step)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = [sys.executable, "-m", "aver.cli", "predict", str(video), "--model", str(model)]
    start = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--json", "--profile"], capture_output=True, text=True, env=env, cwd=REPO
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"aver predict failed:\n{proc.stderr[-3000:]}")
    profile = json.loads(proc.stderr.split("[predict] profile: ")[1].splitlines()[0])
    doc = json.loads(proc.stdout)
    return {
        "wall": wall, "duration": doc["duration_s"], "windows": len(doc["windows"]),
        "rest": wall - sum(profile.values()), **profile,
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
        "| **real-time factor** (wall / duration) | "
        + " | ".join(f"**{rows[n]['wall'] / rows[n]['duration']:.2f}**" for n in names)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[3.0, 60.0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per clip (the fastest kept)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aver-bench-predict-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src, what = source_clip(work)
        model = write_model_file(work / "model.pt", small=False)
        print(f"source: {what}; torch threads: {os.cpu_count()} cpus", file=sys.stderr)
        rows = {}
        for seconds in args.seconds:
            video = make_clip(src, seconds, work / f"clip_{seconds:g}s.mp4")
            runs = [predict_once(video, model) for _ in range(args.repeats)]
            best = min(runs, key=lambda r: r["wall"])
            rows[f"{seconds:g} s clip ({best['windows']:.0f} windows)"] = best
            print(json.dumps(best), file=sys.stderr)
        print(table(rows))


if __name__ == "__main__":
    main()

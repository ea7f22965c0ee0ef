"""End-to-end demo timing: wall time and peak memory of each stage of `dvc repro`.

Copies this checkout into a throw-away git repo (the default params.yaml, i.e. the `demo`
dataset, unless --tiny), runs each stage with `dvc repro -s <stage>` in its own process and
records wall time and the peak RSS of the largest process the stage ran. Optionally compares
models on the resulting feature cache with `dvc exp run -S train.model.name=...`.

    python bench/pipeline.py --workdir /tmp/aver-bench-pipeline [--compare-models]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aver import cli  # noqa: E402
from tests.support.pipeline import (  # noqa: E402
    TINY_PIPELINE,
    interpreter_env,
    make_pipeline_repo,
    pipeline_env,
)

STAGES = list(cli.STAGES)
MODELS = ["audio_only", "video_only", "late_fusion", "avtca", "msan"]


def _measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run cmd in a fresh child interpreter; (wall seconds, peak RSS MiB of any descendant)."""
    probe = (
        "import resource, subprocess, sys, time, json;"
        "t = time.perf_counter();"
        f"r = subprocess.run({cmd!r}, stdout=subprocess.DEVNULL, stderr=sys.stderr);"
        "w = time.perf_counter() - t;"
        "m = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024;"
        "print(json.dumps([r.returncode, w, m]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    rc, wall, peak = json.loads(out.stdout.strip().splitlines()[-1])
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-4000:]}")
    return wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/aver-bench-pipeline"))
    ap.add_argument("--tiny", action="store_true", help="the test suite's small demo config")
    ap.add_argument("--compare-models", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    repo = make_pipeline_repo(args.workdir / "repo", TINY_PIPELINE if args.tiny else None)
    env = pipeline_env(interpreter_env(), repo)
    rows, total = [], 0.0
    for stage in STAGES:
        wall, peak = _measured(["dvc", "repro", "-s", stage], repo, env)
        total += wall
        rows.append((stage, wall, peak))
        print(f"{stage}: {wall:.1f} s, peak {peak:.0f} MiB", file=sys.stderr)
    index = (repo / "data/raw/index.csv").read_text().count("\n") - 1
    print(f"\n`python bench/pipeline.py{' --tiny' if args.tiny else ''}` ({index} clips)\n")
    print("| stage | wall s | peak RSS MiB (largest process) |\n|---|---:|---:|")
    for stage, wall, peak in rows:
        print(f"| {stage} | {wall:.1f} | {peak:.0f} |")
    print(f"| **total** | **{total:.1f}** | |")
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    print(f"\ndefault model test accuracy {metrics['accuracy']:.3f}, UAR {metrics['uar']:.3f}")
    if args.compare_models:
        compare(repo, env)


def compare(repo: Path, env: dict[str, str]) -> None:
    """Each model trained and evaluated on the same cache and fold(s) as a DVC experiment."""
    print("\n| model | test accuracy | test UAR | test macro-F1 | val UAR | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in MODELS:
        t = time.perf_counter()
        subprocess.run(
            ["dvc", "exp", "run", "-n", f"model-{name}", "-S", f"train.model.name={name}"],
            cwd=repo,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        took = time.perf_counter() - t
        m = json.loads((repo / "reports/metrics.json").read_text())
        s = json.loads((repo / "models/train_summary.json").read_text())
        val = [f["val_uar"] for f in s["folds"].values()]
        print(
            f"| {name} | {m['accuracy']:.3f} | {m['uar']:.3f} | {m['macro_f1']:.3f} | "
            f"{sum(val) / len(val):.3f} | {took:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

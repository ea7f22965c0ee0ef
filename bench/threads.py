"""Thread policy benchmark (not a test): 1 vs N threads or workers for align, train and predict.

Builds a small demo pipeline repo (`dvc repro train`), then times, each in a fresh process and
interleaved over `--repeats` rounds (medians reported):
- align (the stage, on the extracted clips): 1 worker, 2 workers under the policy (1 thread
  each on 2 cores), and 2 workers forced to 2 threads each (`AVER_THREADS=2`, oversubscribed:
  what a pool inheriting torch's default got);
- train (the stage, `--epochs` epochs of fold 0): `AVER_THREADS=1` vs the policy (all cores);
- predict (`aver predict` on one demo clip, start-up included): `AVER_THREADS=1` vs the policy.
The goal (issue 20): going from 1 to N threads or workers never makes a run slower.

    python bench/threads.py --workdir /tmp/aver-bench-threads --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aver import threads  # noqa: E402
from tests.support.pipeline import dvc, make_pipeline_repo, pipeline_env  # noqa: E402

SMALL = {
    "data": {"demo": {"speakers": 4, "clips_per_class": 2, "duration_s": 2.0}},
    "train": {"epochs": 3, "use_tuned": False, "folds": [0]},
}


def _params(repo: Path, name: str, overrides: dict) -> Path:
    """params.yaml with `overrides` (dotted keys) written beside it as params-NAME.yaml."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = repo / f"params-{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _timed(cmd: list[str], repo: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-4000:]}")
    return wall


def cases(repo: Path, epochs: int) -> dict[str, tuple[list[str], dict[str, str], list[Path]]]:
    """name -> (command, extra env, outputs to delete before each run)."""
    py = sys.executable
    cases: dict[str, tuple[list[str], dict[str, str], list[Path]]] = {}
    for name, workers, forced in (
        ("align: 1 worker", 1, None),
        ("align: 2 workers (policy)", 2, None),
        ("align: 2 workers x 2 threads", 2, "2"),
    ):
        out = repo / f"data/faces-{workers}-{forced or 'policy'}"
        params = _params(repo, out.name, {"align.workers": workers, "align.out": str(out)})
        env = {threads.THREADS_ENV: forced} if forced else {}
        stale = [out, out.with_name(out.name + ".partial")]
        cases[name] = ([py, "stages/align.py", "--params", str(params)], env, stale)
    for label, forced in (("1 thread", "1"), ("policy", None)):
        out = repo / f"models-{forced or 'policy'}"
        params = _params(repo, out.name, {"train.out": str(out), "train.epochs": epochs})
        env = {threads.THREADS_ENV: forced} if forced else {}
        cases[f"train: {label}"] = ([py, "stages/train.py", "--params", str(params)], env, [out])
    clip = next(p for p in sorted((repo / "data/raw").rglob("*.mp4")))
    predict = [py, "-m", "aver.cli", "predict", str(clip), "--model", "models/model.pt"]
    cases["predict: 1 thread"] = (predict, {threads.THREADS_ENV: "1"}, [])
    cases["predict: policy"] = (predict, {}, [])
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/aver-bench-threads"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    repo = make_pipeline_repo(args.workdir / "repo", SMALL)
    base = pipeline_env(dict(os.environ), repo)
    base.pop(threads.THREADS_ENV, None)
    print("building the demo pipeline (dvc repro train) ...", file=sys.stderr)
    dvc(repo, base, "repro", "train", timeout=3600)
    runs: dict[str, list[float]] = {}
    todo = cases(repo, args.epochs)
    for round_ in range(args.repeats):
        for name, (cmd, extra, stale) in todo.items():
            for path in stale:
                shutil.rmtree(path, ignore_errors=True)
            wall = _timed(cmd, repo, {**base, **extra})
            runs.setdefault(name, []).append(wall)
            print(f"round {round_ + 1}: {name}: {wall:.2f} s", file=sys.stderr)
    cores = threads.available_cores()
    print(f"\n`python bench/threads.py --repeats {args.repeats}` ({cores} cores)\n")
    print("| run | median s | vs the 1-thread / 1-worker run |\n|---|---:|---:|")
    baseline = {}
    for name, walls in runs.items():
        task = name.split(":")[0]
        med = statistics.median(walls)
        baseline.setdefault(task, med)
        print(f"| {name} | {med:.2f} | {med / baseline[task]:.2f}x |")


if __name__ == "__main__":
    main()

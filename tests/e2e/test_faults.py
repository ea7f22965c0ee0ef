"""Kill drills: SIGKILL `dvc repro <stage>` mid-run, then rerun it and compare with a clean run.

One repo copy with the TINY_PIPELINE config walks the pipeline stage by stage: for each stage,
`dvc repro <stage>` is started in its own session, the whole process tree is SIGKILLed once the
stage has visibly done part of its work, every file left under the stage's declared outputs must
be complete (parses) or absent, and a rerun must finish with outputs equal to a clean run's: the
session's `demo_pipeline` (same config, other repo copy). Deterministic stages are compared file
by file (md5); tune/train/evaluate by their metrics within TOL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aver import cli
from tests.support.pipeline import TINY_PIPELINE, dvc, make_pipeline_repo, pipeline_env

pytestmark = pytest.mark.e2e

STAGES = tuple(cli.STAGES)
DETERMINISTIC = {"download", "extract", "align", "cache"}
# Metrics of nondeterministic stages (two runs of one trial differ by float order): two clips of
# the 16 validation clips (4 classes) move UAR by 0.125.
TOL = 0.13
START_TIMEOUT_S = 600.0
# Temp files of aver.io.atomic: `.<name>.<random>.tmp<suffix>` beside the target.
TEMP = re.compile(r"^\..+\.tmp[^/]*$")


# ---- process control ---------------------------------------------------------------------------


def start_repro(repo: Path, env: dict[str, str], stage: str, log: Path) -> subprocess.Popen:
    """`dvc repro <stage>` in its own session, stdout+stderr into `log`."""
    with open(log, "wb") as fh:
        return subprocess.Popen(
            ["dvc", "repro", stage],
            cwd=repo,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(proc: subprocess.Popen) -> list[str]:
    """SIGKILL the process group and every descendant (Ray daemons leave the group).

    The tree is frozen with SIGSTOP until no new process appears, then killed by pid. Returns
    the command lines of the killed processes.
    """
    import psutil

    seen: dict[int, psutil.Process] = {}
    for _ in range(20):
        fresh = [p for p in _tree(proc.pid) if p.pid not in seen]
        if not fresh and seen:
            break
        for p in fresh:
            seen[p.pid] = p
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGSTOP)
    cmds = []
    for p in seen.values():
        with contextlib.suppress(psutil.Error):
            cmds.append(" ".join(p.cmdline()))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in seen.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(list(seen.values()), timeout=10)
    assert not alive, f"processes survived SIGKILL: {alive}"
    return cmds


def kill_when(
    proc: subprocess.Popen,
    log: Path,
    started: Callable[[str], bool],
    stage: str,
    in_flight: Callable[[], list[Path]],
    wait_s: float,
) -> tuple[float, list[Path]]:
    """Poll until `started(log text)`, then (for up to `wait_s`) until `in_flight()` lists a
    temp file being written; kill the tree. Returns seconds until the kill and those files."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < START_TIMEOUT_S:
        text = log.read_text(errors="replace")
        if proc.poll() is not None:
            pytest.fail(f"dvc repro {stage} ended ({proc.returncode}) before the kill point:\n"
                        f"{text[-3000:]}")  # fmt: skip
        if f"Running stage '{stage}'" in text and started(text):
            break
        time.sleep(0.05)
    else:
        kill_tree(proc)
        pytest.fail(f"{stage} showed no progress within {START_TIMEOUT_S:.0f} s")
    t1, temps = time.monotonic(), in_flight()
    while not temps and time.monotonic() - t1 < wait_s and proc.poll() is None:
        time.sleep(0.01)
        temps = in_flight()
    if proc.poll() is not None:
        pytest.fail(f"dvc repro {stage} ended ({proc.returncode}) before the kill point")
    elapsed = time.monotonic() - t0
    killed = kill_tree(proc)
    if not any(f"stages/{stage}.py" in cmd for cmd in killed):
        pytest.fail(f"the kill landed after stages/{stage}.py had exited (dvc was finishing up)")
    return elapsed, temps


# ---- kill points: the stage visibly did part of its work -----------------------------------------


def _count(pattern: str) -> Callable[[Path], int]:
    return lambda repo: len(list(repo.glob(pattern)))


def _progress(desc: str, text: str) -> int:
    """Highest `n` of tqdm lines `desc: ... n/total` in the log."""
    found = re.findall(rf"{re.escape(desc)}:\s*\d+%\|[^|]*\|\s*(\d+)/\d+", text)
    return max((int(n) for n in found), default=0)


@dataclass(frozen=True)
class Drill:
    stage: str
    started: Callable[[Path, str], bool]  # (repo, log text) -> kill now (or once writing)
    writes: tuple[str, ...] = ()  # globs of temp files of writes in flight: kill during one
    write_wait_s: float = 0.0  # how long to wait for one (well below the stage's remaining time)
    must_catch_write: bool = False  # writes are long enough that the kill always lands in one


def n_clips() -> int:
    demo = TINY_PIPELINE["data"]["demo"]
    return demo["speakers"] * 4 * demo["clips_per_class"]


def _third(count: Callable[[Path], int]) -> Callable[[Path, str], bool]:
    return lambda repo, _text: count(repo) >= max(1, n_clips() // 3)


DRILLS = {
    "download": Drill(
        "download",
        _third(_count("data/raw/demo/Actor_*/01-01-*.mp4")),
        ("data/raw/demo/Actor_*/.*.tmp*",),
        write_wait_s=5.0,
        must_catch_write=True,
    ),
    "extract": Drill(
        "extract",
        _third(_count("data/interim.partial/.rows/*.json")),
        ("data/interim.partial/*/.*.tmp*",),
        write_wait_s=2.0,
    ),
    "align": Drill(
        "align",
        _third(_count("data/faces.partial/clips/*.json")),
        ("data/faces.partial/clips/.*.tmp*",),
        write_wait_s=2.0,
    ),
    "cache": Drill(
        "cache",
        # clips into the (one) shard: the stage's own bar counts shards
        lambda _r, text: _progress("cache shard-00000", text) >= n_clips() // 3,
        ("data/features.partial/**/.*.tmp*",),
    ),
    # a trial reported its first epoch to Ray (result.json has a row)
    "tune": Drill(
        "tune",
        lambda repo, _t: any(p.stat().st_size > 0 for p in repo.glob("data/tune/*/*/result.json")),
    ),
    # two epochs checkpointed (models/checkpoints/fold-0/last.pt), the third under way
    "train": Drill(
        "train",
        lambda _r, text: _progress("train fold 0", text) >= 2,
        ("models/checkpoints/fold-0/.*.tmp*",),
    ),
    # the test split is being predicted
    "evaluate": Drill("evaluate", lambda _r, text: "test fold 0" in text, ("reports/.*.tmp*",)),
}


# ---- output checks -------------------------------------------------------------------------------


def declared_outs(repo: Path, stage: str) -> list[str]:
    """outs + metrics + plots of a stage in dvc.yaml."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage]
    paths = []
    for key in ("outs", "metrics", "plots"):
        for item in spec.get(key, []):
            paths.append(next(iter(item)) if isinstance(item, dict) else str(item))
    return paths


def out_files(repo: Path, stage: str) -> list[Path]:
    files = []
    for rel in declared_outs(repo, stage):
        path = repo / rel
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [p for p in files if p.is_file()]


def unreadable(path: Path) -> str | None:
    """Why `path` is not a complete file of its type, or None when it parses."""
    suffix = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            return "empty"
        if suffix == ".csv":
            pd.read_csv(path)
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix in {".yaml", ".yml"}:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        elif suffix == ".npy":
            np.asarray(np.load(path, mmap_mode="r")).sum()
        elif suffix == ".npz":
            with np.load(path) as z:
                [z[k] for k in z.files]
        elif suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                im.load()
        elif suffix == ".wav":
            import soundfile as sf

            sf.read(path)
        elif suffix == ".mp4":
            import av

            with av.open(str(path)) as c:
                n = sum(1 for _ in c.decode(video=0))
            if n == 0:
                return "no frames"
        elif suffix == ".pt":
            import torch

            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any parse error: a partial file
        return f"{type(err).__name__}: {str(err)[:200]}"
    return None


def partial_finals(repo: Path, stage: str) -> list[str]:
    """Files under the stage's outputs that have a final name but do not parse."""
    bad = []
    for path in out_files(repo, stage):
        if TEMP.match(path.name):
            continue
        why = unreadable(path)
        if why:
            bad.append(f"{path.relative_to(repo)}: {why}")
    return bad


def temp_files(repo: Path, stage: str) -> list[str]:
    return [str(p.relative_to(repo)) for p in out_files(repo, stage) if TEMP.match(p.name)]


def file_hashes(repo: Path, stage: str) -> dict[str, str]:
    """md5 of every file under the stage's outputs, by repo-relative path."""
    return {
        str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in out_files(repo, stage)
        if p.name != ".gitignore"
    }


def lock_md5s(repo: Path, stage: str) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"][stage]
    return {o["path"]: o["md5"] for o in lock.get("outs", [])}


def tune_table(repo: Path) -> pd.DataFrame:
    table = pd.read_csv(repo / "reports/tune/results.csv")
    keys = [c for c in table.columns if c.startswith("train.")]
    table["config"] = table[keys].round(12).astype(str).agg(",".join, axis=1)
    return table.set_index("config").sort_index()


def tune_curves(repo: Path) -> dict[str, dict[int, float]]:
    """val_uar per epoch of every trial (Ray's progress.csv under tune.storage_path), by config."""
    curves: dict[str, dict[int, float]] = {}
    for trial in repo.glob("data/tune/*/*_trial_*"):
        config = json.loads((trial / "params.json").read_text())
        key = json.dumps({k: round(v, 12) for k, v in config.items()}, sort_keys=True)
        progress = pd.read_csv(trial / "progress.csv")
        curves[key] = dict(zip(progress["epoch"].astype(int), progress["val_uar"]))
    return curves


def train_folds(repo: Path) -> dict[str, dict]:
    return json.loads((repo / "models/train_summary.json").read_text())["folds"]


def test_metrics(repo: Path) -> dict:
    doc = json.loads((repo / "reports/metrics.json").read_text())
    return {k: doc[k] for k in ("accuracy", "uar", "macro_f1", "n_test")}


test_metrics.__test__ = False  # a helper, not a test


@dataclass
class Snapshot:
    """What a clean run produced, per stage."""

    hashes: dict[str, dict[str, str]]
    locks: dict[str, dict[str, str]]
    tune: pd.DataFrame
    tune_curves: dict[str, dict[int, float]]
    train: dict[str, dict]
    evaluate: dict


def snapshot(repo: Path) -> Snapshot:
    return Snapshot(
        hashes={s: file_hashes(repo, s) for s in DETERMINISTIC},
        locks={s: lock_md5s(repo, s) for s in STAGES},
        tune=tune_table(repo),
        tune_curves=tune_curves(repo),
        train=train_folds(repo),
        evaluate=test_metrics(repo),
    )


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(demo_pipeline) -> Snapshot:
    """The clean run: the session's demo_pipeline (TINY_PIPELINE), read before anything edits it."""
    repo, _ = demo_pipeline
    return snapshot(repo)


@pytest.fixture(scope="module")
def drill_repo(tmp_path_factory, venv_env):
    """A repo copy walked stage by stage by the drills (state carries from one to the next)."""
    repo = make_pipeline_repo(tmp_path_factory.mktemp("drills") / "repo", TINY_PIPELINE)
    # tqdm bars in the logs (not aver.progress's plain lines): the drills time kills by them
    return repo, {**pipeline_env(venv_env, repo), "AVER_PROGRESS": "bar"}


# ---- the drills ----------------------------------------------------------------------------------

# Drills that fail today, with the cause (strict: they flip to XPASS, an error, once fixed).
# Drills expected to fail, with the reason.
XFAIL: dict[str, str] = {
    "train": (
        "flaky: a resumed training run once early-stopped at another epoch than the clean run"
        " (CI on 064c0b8: 56 vs 32 epochs; it passed on a rerun); resume determinism to be"
        " restored"
    ),
}


def _param(stage: str):
    marks = [pytest.mark.xfail(strict=False, reason=XFAIL[stage])] if stage in XFAIL else []
    return pytest.param(stage, marks=marks, id=stage)


@pytest.mark.parametrize("stage", [_param(s) for s in STAGES])
def test_sigkill_mid_stage_then_rerun_matches_a_clean_run(stage, drill_repo, clean, tmp_path):
    repo, env = drill_repo
    i = STAGES.index(stage)
    if i:  # the stages before it (already done when the drills run in order)
        dvc(repo, env, "repro", STAGES[i - 1])

    log = tmp_path / f"{stage}-killed.log"
    proc = start_repro(repo, env, stage, log)
    drill = DRILLS[stage]
    waited, in_flight = kill_when(
        proc,
        log,
        lambda text: drill.started(repo, text),
        stage,
        lambda: [p for pattern in drill.writes for p in repo.glob(pattern)],
        drill.write_wait_s,
    )

    assert in_flight or not drill.must_catch_write, f"{stage}: killed outside a write"
    partial = partial_finals(repo, stage)
    assert not partial, f"{stage}: partial files under final names after SIGKILL: {partial}"

    t0 = time.monotonic()
    out = dvc(repo, env, "repro", stage)
    rerun_s = time.monotonic() - t0
    assert f"Running stage '{stage}'" in out, out
    print(f"{stage}: killed after {waited:.1f} s writing {in_flight}, rerun {rerun_s:.1f} s")

    assert not partial_finals(repo, stage)
    leftovers = temp_files(repo, stage)
    assert not leftovers, f"{stage}: temp files of the killed run left in its outputs: {leftovers}"

    if stage in DETERMINISTIC:
        got, want = file_hashes(repo, stage), clean.hashes[stage]
        differ = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
        assert not differ, f"{stage}: files differ from the clean run: {differ[:20]}"
        assert lock_md5s(repo, stage) == clean.locks[stage]
    elif stage == "tune":
        got, want = tune_table(repo), clean.tune
        # The search is seeded: the same configurations, each trial once, none errored.
        assert list(got.index) == list(want.index), (got, want)
        assert got["error"].isna().all(), got["error"]
        # Each trial's validation curve matches the clean run's on the epochs both ran (which
        # trials ASHA stops early depends on the order trials report in).
        curves, clean_curves = tune_curves(repo), clean.tune_curves
        assert curves.keys() == clean_curves.keys()
        for key, curve in curves.items():
            common = curve.keys() & clean_curves[key].keys()
            assert 1 in common, (key, curve, clean_curves[key])
            assert all(abs(curve[e] - clean_curves[key][e]) <= TOL for e in common), (
                key, curve, clean_curves[key],
            )  # fmt: skip
    elif stage == "train":
        got, want = train_folds(repo), clean.train
        assert got.keys() == want.keys()
        for fold, g in got.items():
            w = want[fold]
            assert g["epochs_done"] == w["epochs_done"], (g, w)
            assert g["resumed_from_epoch"] >= 2, f"the rerun did not resume from last.pt: {g}"
            for key in ("val_uar", "val_accuracy", "val_macro_f1"):
                assert abs(g[key] - w[key]) <= TOL, (key, g, w)
    else:
        got, want = test_metrics(repo), clean.evaluate
        assert got["n_test"] == want["n_test"]
        for key in ("accuracy", "uar", "macro_f1"):
            assert abs(got[key] - want[key]) <= TOL, (key, got, want)

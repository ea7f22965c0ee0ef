"""A corrupt-media battery through `dvc repro cache` with the `folder` dataset.

Good generated demo clips plus the files of tests/e2e/media_battery.py (empty, truncated, one
stream only, text named .mp4, too short, rotated portrait, no face) are listed in a folder CSV.
A first `dvc repro extract` under a strict extract.max_failure_fraction must fail with an error
naming the bad files and the fix; after raising the fraction, `dvc repro cache` must record each
bad clip in the right stage's failures.csv with a readable reason and cache the good ones.
"""

from __future__ import annotations

import csv
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aver.config import DemoConfig
from aver.datasets.demo import generate
from aver.datasets.ravdess import parse_ravdess_name
from tests.e2e.media_battery import PORTRAIT_H, PORTRAIT_W, BadClip, build_battery
from tests.support.pipeline import dvc, make_pipeline_repo, pipeline_env

pytestmark = pytest.mark.e2e

STRICT = 0.1  # extract.max_failure_fraction of the first run: 6 of 16 clips fail extract
SPEAKERS = ("s1", "s2", "s3", "s4")


@dataclass
class BatteryRun:
    repo: Path
    good: list[str]  # clip ids of the generated demo clips
    battery: list[BadClip]
    portrait_source: str  # clip id of the good clip the portrait clip was made from
    strict: subprocess.CompletedProcess  # the first, failing `dvc repro extract`
    log: str  # output of the successful `dvc repro cache`


def _write_params(repo: Path, section: str, key: str, value: object) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def battery_run(tmp_path_factory, venv_env) -> BatteryRun:
    tmp = tmp_path_factory.mktemp("bad-media")
    media = tmp / "media"
    demo = generate(tmp / "demo", DemoConfig(speakers=2, clips_per_class=1, duration_s=1.6))
    battery = build_battery(demo[0], media)
    rows = []
    for i, src in enumerate(demo):
        dst = media / src.name
        dst.write_bytes(src.read_bytes())
        rows.append((dst.name, parse_ravdess_name(src.name).label, SPEAKERS[i % len(SPEAKERS)]))
    labels = sorted({r[1] for r in rows})
    for i, (_, path) in enumerate(battery):
        rows.append((path.name, labels[i % len(labels)], SPEAKERS[i % len(SPEAKERS)]))
    table = media / "clips.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "speaker"])
        writer.writerows(rows)

    repo = make_pipeline_repo(
        tmp / "repo",
        {
            "data": {"dataset": "folder", "folder": {"csv": str(table)}},
            "extract": {"max_failure_fraction": STRICT},
            "align": {"max_failure_fraction": 0.25},
            "cache": {"window_s": 1.6, "max_failure_fraction": 0.25},
        },
    )
    env = pipeline_env(venv_env, repo)
    strict = subprocess.run(
        ["dvc", "repro", "extract"], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    _write_params(repo, "extract", "max_failure_fraction", 0.5)
    log = dvc(repo, env, "repro", "cache")
    return BatteryRun(
        repo=repo,
        good=[p.stem for p in demo],
        battery=[clip for clip, _ in battery],
        portrait_source=demo[0].stem,
        strict=strict,
        log=log,
    )


def _failures(repo: Path, stage_out: str) -> pd.DataFrame:
    table = pd.read_csv(repo / stage_out / "failures.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["clip_id", "path", "stage", "reason"]
    return table.set_index("clip_id")


def test_too_many_failures_stop_extract_with_an_error_naming_files_and_fix(battery_run):
    run = battery_run
    assert run.strict.returncode != 0, run.strict.stdout
    assert "aver extract: error:" in run.strict.stderr, run.strict.stderr
    err = run.strict.stderr.split("aver extract: error:", 1)[1]  # the message, not the log
    bad = [c for c in run.battery if c.stage == "extract"]
    assert f"{len(bad)}/{len(run.good) + len(run.battery)} clips failed" in err, err
    named = [c.name for c in bad if f"{c.name}.mp4" in err and c.keywords[0] in err.lower()]
    assert len(named) >= 5, err  # the first five failures, each with its reason
    assert "failures.csv" in err and "extract.max_failure_fraction" in err, err
    assert "Fix:" in err, err


def test_each_bad_clip_is_listed_by_its_stage_with_a_readable_reason(battery_run):
    run = battery_run
    tables = {
        "extract": _failures(run.repo, "data/interim"),
        "align": _failures(run.repo, "data/faces"),
        "cache": _failures(run.repo, "data/features"),
    }
    for clip in run.battery:
        for stage, table in tables.items():
            if stage != clip.stage:
                assert clip.name not in table.index, (clip, table)
                continue
            assert clip.name in table.index, (clip, table)
            row = table.loc[clip.name]
            assert row["stage"] == stage and row["path"].endswith(f"{clip.name}.mp4"), row
            reason = row["reason"].lower()
            assert all(k in reason for k in clip.keywords), (clip, row["reason"])
            assert "traceback" not in reason and len(reason) < 400, row["reason"]
    expected = {s: {c.name for c in run.battery if c.stage == s} for s in tables}
    assert {s: set(t.index) for s, t in tables.items()} == expected


def test_good_and_portrait_clips_reach_the_feature_cache(battery_run):
    run = battery_run
    index = pd.read_csv(run.repo / "data/features/index.csv", dtype={"clip_id": str})
    assert sorted(index["clip_id"]) == sorted([*run.good, "portrait_rotated"])
    faces = pd.read_csv(run.repo / "data/faces/index.csv", dtype={"clip_id": str})
    rate = faces.set_index("clip_id")["detection_rate"]
    assert rate["portrait_rotated"] >= 0.9, rate  # MTCNN finds the upright face


def _frames(path: Path, n: int = 5) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24").astype(np.float32))
            if len(out) == n:
                break
    return np.stack(out)


def test_portrait_clip_is_extracted_upright_without_rotation_metadata(battery_run):
    from aver.media.probe import probe

    run = battery_run
    interim = run.repo / "data/interim"
    manifest = pd.read_csv(interim / "manifest.csv", dtype={"clip_id": str}).set_index("clip_id")
    row = manifest.loc["portrait_rotated"]
    assert (row["width"], row["height"]) == (PORTRAIT_W, PORTRAIT_H)
    assert (row["src_width"], row["src_height"]) == (PORTRAIT_H, PORTRAIT_W)  # stored sideways
    assert row["rotation"] in (90, 270)
    assert probe(interim / row["video"], need_audio=False).video.rotation == 0

    # The middle of the portrait frames is the source clip's picture, the right way up.
    top = (PORTRAIT_H - PORTRAIT_W) // 2
    portrait = _frames(interim / row["video"])[:, top : top + PORTRAIT_W]
    source = _frames(interim / manifest.loc[run.portrait_source, "video"])
    upright = np.abs(portrait - source).mean()
    turned = [np.abs(np.rot90(portrait, k, axes=(1, 2)) - source).mean() for k in (1, 2, 3)]
    assert upright < 12, upright
    assert min(turned) > 2 * upright, (upright, turned)

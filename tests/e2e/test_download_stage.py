"""`dvc repro download` on the demo dataset, in a throw-away git repo copy."""

from __future__ import annotations

import json

import pandas as pd

from tests.support.pipeline import dvc


def test_dvc_repro_download_builds_demo_and_is_a_noop_twice(tiny_repo):
    repo, env = tiny_repo
    dvc(repo, env, "repro", "download")
    raw = repo / "data" / "raw"
    index = pd.read_csv(raw / "index.csv", dtype=str)
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["name"] == "demo"
    assert meta["classes"] == ["neutral", "happy", "sad", "angry"]
    # 3 speakers x 4 classes x 1 clip, every file real and listed once.
    assert len(index) == meta["n_clips"] == 12
    assert sorted(index["speaker"].unique()) == ["01", "02", "03"]
    assert set(index["label"]) == set(meta["classes"])
    assert index["clip_id"].is_unique
    for rel in index["path"]:
        assert (raw / rel).stat().st_size > 1000
    assert (repo / "dvc.lock").exists()

    out = dvc(repo, env, "repro", "download")
    assert "didn't change" in out and "Running stage" not in out

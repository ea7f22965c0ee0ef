"""An audio-only dataset through `dvc repro`: a folder of WAVs (the demo generator's sound),
trained and evaluated with `audio_only`; a video-reading model is refused by name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.folders import wav_folder
from tests.support.pipeline import (
    audio_folder_params,
    dvc,
    make_pipeline_repo,
    pipeline_env,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def audio_repo(tmp_path_factory, venv_env) -> tuple[Path, dict[str, str], str]:
    tmp = tmp_path_factory.mktemp("audio-only")
    table = wav_folder(tmp)
    repo = make_pipeline_repo(tmp / "repo", audio_folder_params(table))
    env = pipeline_env(venv_env, repo)
    return repo, env, dvc(repo, env, "repro")


def test_wav_folder_runs_through_evaluate_with_audio_only(audio_repo):
    repo, _, _ = audio_repo
    assert json.loads((repo / "data/raw/dataset.json").read_text())["modalities"] == ["audio"]
    manifest = pd.read_csv(repo / "data/interim/manifest.csv", dtype=str, keep_default_na=False)
    assert len(manifest) == 12 and (manifest["video"] == "").all()
    assert not list((repo / "data/interim/video").iterdir())
    faces = pd.read_csv(repo / "data/faces/failures.csv")
    assert faces.empty  # passed through, not failures
    meta = json.loads((repo / "data/features/meta.json").read_text())
    assert meta["modalities"] == ["audio"] and meta["n_clips"] == 12
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["dataset"] == "folder" and 0.0 <= metrics["uar"] <= 1.0
    assert (repo / "models/model.pt").is_file()


def test_a_video_model_is_refused_by_name(audio_repo):
    repo, env, _ = audio_repo
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"]["model"]["name"] = "msan"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(
        ["dvc", "repro", "train"], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0, proc.stdout
    err = proc.stdout + proc.stderr
    assert "train.model.name 'msan' reads video, but dataset 'folder' has no video" in err, err
    assert "use audio_only" in err, err

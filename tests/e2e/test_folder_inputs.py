"""A folder dataset's inputs through `dvc repro`: `train` with `use_tuned: false` runs no sweep;
editing the CSV or replacing a listed file reruns download and the stages after it; an
unchanged rerun (or a file touched without a change) runs nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.support.folders import wav_folder
from tests.support.pipeline import (
    audio_folder_params,
    dvc,
    make_pipeline_repo,
    pipeline_env,
)

pytestmark = pytest.mark.e2e


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def folder_repo(tmp_path_factory, venv_env) -> tuple[Path, dict[str, str], Path]:
    tmp = tmp_path_factory.mktemp("folder-inputs")
    table = wav_folder(tmp)
    repo = make_pipeline_repo(tmp / "repo", audio_folder_params(table))
    return repo, pipeline_env(venv_env, repo), table


def test_single_stage_train_before_tune_fails_naming_the_missing_output(folder_repo):
    """`dvc repro -s train` runs train alone: DVC refuses while tune's output is missing."""
    repo, env, _ = folder_repo
    proc = subprocess.run(
        ["dvc", "repro", "-s", "train"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "failed to reproduce 'train'" in proc.stdout + proc.stderr


def test_train_with_use_tuned_false_runs_no_sweep(folder_repo):
    repo, env, _ = folder_repo
    ran = _ran(dvc(repo, env, "repro", "train"))
    assert ran == {"download", "extract", "align", "cache", "tune", "train"}
    assert sorted(p.name for p in (repo / "reports/tune").iterdir()) == ["NOT_TUNED.txt"]
    assert not (repo / "data/tune").exists()  # no Ray Tune storage: no sweep started
    assert (repo / "models/model.pt").is_file()
    # The single-stage form works once tune's gate has written its output.
    assert _ran(dvc(repo, env, "repro", "-s", "-f", "train")) == {"train"}


def test_folder_edits_rerun_download_and_the_stages_after_it(folder_repo):
    repo, env, table = folder_repo
    assert _ran(dvc(repo, env, "repro", "extract")) == set()
    assert "up to date" in dvc(repo, env, "status", "--with-deps", "train")

    wavs = sorted(table.parent.glob("*.wav"))
    wavs[0].touch()  # same content: DVC rehashes and finds no change
    assert _ran(dvc(repo, env, "repro", "extract")) == set()

    shutil.copyfile(wavs[-1], wavs[0])  # another recording; the listing is unchanged
    assert _ran(dvc(repo, env, "repro", "extract")) == {"download", "extract"}
    assert "align:" in dvc(repo, env, "status", "--with-deps", "train")  # the rest follows

    lines = table.read_text().splitlines()  # a clip given to another speaker
    path, label, speaker = lines[1].split(",")
    other = next(s for s in ("01", "02", "03") if s != speaker)
    table.write_text("\n".join([lines[0], f"{path},{label},{other}", *lines[2:]]) + "\n")
    assert _ran(dvc(repo, env, "repro", "extract")) == {"download", "extract"}
    index = pd.read_csv(repo / "data/raw/index.csv", dtype=str)
    assert (index["speaker"] == other).sum() == 5
    assert _ran(dvc(repo, env, "repro", "extract")) == set()

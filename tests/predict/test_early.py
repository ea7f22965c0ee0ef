"""The first file's extraction started before torch loads: used when it matches the model."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aver.config import ExtractConfig
from aver.predict import main
from aver.predict.early import EarlyExtraction, start_early
from aver.predict.modalities import InputPlan
from aver.predict.steps import Steps
from tests.support.model_files import demo_clips, strip_audio, write_model_file

BOTH = InputPlan(audio=True, video=True, faceless_windows=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return demo_clips(tmp_path_factory.mktemp("early"), duration_s=2.0)["happy"]


def _args(video: Path, model: Path) -> argparse.Namespace:
    return argparse.Namespace(
        video=[str(video)], model=str(model), json=True, timeline=None, params="no-params.yaml",
        profile=False, output=None,
    )  # fmt: skip


def test_the_early_extraction_is_used_and_predicts_the_same(clip, tmp_path, capsys):
    model = write_model_file(tmp_path / "model.pt")
    main(_args(clip, model))
    plain = json.loads(capsys.readouterr().out)
    early = start_early(_args(clip, model))
    assert early is not None
    used: list[bool] = []
    take = early.take

    def spy(*args, **kwargs):
        taken = take(*args, **kwargs)
        used.append(taken is not None)
        return taken

    early.take = spy  # type: ignore[method-assign]
    main(_args(clip, model), early)
    got = json.loads(capsys.readouterr().out)
    assert used == [True]
    assert got["probabilities"] == pytest.approx(plain["probabilities"], abs=1e-6)
    assert len(got["windows"]) == len(plain["windows"])


def test_other_output_settings_or_a_missing_stream_are_not_used(clip, tmp_path):
    early = EarlyExtraction(clip, ExtractConfig(fps=10))
    early._thread.join()  # the extraction done (probed() returns after the probe)
    assert early._work is not None  # the files it made
    work = Path(early._work.name)
    assert work.is_dir()
    assert early.take(ExtractConfig(), BOTH, Steps()) is None
    assert not work.exists()  # removed
    silent = strip_audio(clip, tmp_path / "silent.mp4")
    assert EarlyExtraction(silent, ExtractConfig()).take(ExtractConfig(), BOTH, Steps()) is None
    audio_only_ok = InputPlan(audio=False, video=True, faceless_windows=False)
    taken = EarlyExtraction(silent, ExtractConfig()).take(ExtractConfig(), audio_only_ok, Steps())
    assert taken is not None and taken.row["audio"] == "" and taken.row["video"]
    taken.cleanup()


def test_only_one_file_without_output_starts_early(clip, tmp_path):
    model = tmp_path / "m.pt"
    assert start_early(argparse.Namespace(video=[str(clip), str(clip)], output=None)) is None
    assert start_early(argparse.Namespace(video=[str(clip)], output="r.csv")) is None
    assert start_early(argparse.Namespace(video=[str(tmp_path)], output=None)) is None
    early = start_early(_args(clip, model))
    assert early is not None
    early.discard()


def test_a_broken_file_fails_as_without_it(tmp_path):
    """The console script: the early thread swallows the error, the regular path reports it."""
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    model = write_model_file(tmp_path / "model.pt")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "aver.cli", "predict", str(bad), "--model", str(model)],
        capture_output=True, text=True, env={**os.environ, "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert out.returncode == 1
    assert "broken.mp4" in out.stderr and "aver predict: error:" in out.stderr
    assert not list(scratch.iterdir())  # the early extraction's scratch files removed

"""The extract stage end to end: index.csv -> wav/mp4 + manifest + failures, resume, limits."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from aver.config import DataConfig, ExtractConfig, Params
from aver.contracts import MANIFEST, DatasetInfo
from aver.errors import DataError
from aver.failures import COLUMNS as FAILURE_COLUMNS
from aver.media.extract import MANIFEST_COLUMNS
from aver.media.pipeline import Job, _finished_row, extract_job, run
from tests.media.conftest import BAD


def _dataset(tmp_path: Path, media: dict[str, Path], names: list[str]) -> Path:
    """data/raw with the named files under clips/ and an index.csv (download's contract)."""
    root = tmp_path / "raw"
    (root / "clips").mkdir(parents=True)
    rows = []
    for name in sorted(names):
        dst = root / "clips" / f"{name}{media[name].suffix}"
        shutil.copyfile(media[name], dst)
        rows.append(
            {"clip_id": name, "path": f"clips/{dst.name}", "label": "neutral", "speaker": "s1"}
        )
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root


def _params(root: Path, out: Path, **extract) -> Params:
    return Params(
        data=DataConfig(root=str(root)),
        extract=ExtractConfig(out=str(out), **{"workers": 1, **extract}),
    )


def test_bad_inputs_are_recorded_and_the_stage_completes(media, tmp_path):
    good = ["good", "flash", "portrait"]
    root = _dataset(tmp_path, media, good + sorted(BAD))
    out = tmp_path / "interim"
    run(_params(root, out, max_failure_fraction=0.9, workers=2))

    assert not (tmp_path / "interim.partial").exists()
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert sorted(manifest["clip_id"]) == sorted(good)
    for row in manifest.itertuples():
        assert row.audio == f"audio/{row.clip_id}.wav" and (out / row.audio).is_file()
        assert row.video == f"video/{row.clip_id}.mp4" and (out / row.video).is_file()
        assert sf.info(out / row.audio).frames == row.n_frames * 640  # 16000 / 25
    assert manifest.set_index("clip_id").loc["portrait", "rotation"] == 90
    assert manifest.set_index("clip_id").loc["flash", "src_format"] == "flv"

    failures = pd.read_csv(out / "failures.csv")
    assert list(failures.columns) == FAILURE_COLUMNS
    assert list(failures["clip_id"]) == sorted(BAD)
    assert set(failures["stage"]) == {"extract"}
    for row in failures.itertuples():
        assert row.reason.startswith(BAD[row.clip_id] + ":"), row.reason
        assert row.path.startswith(f"{root.as_posix()}/clips/")  # the original file
    reasons = dict(zip(failures["clip_id"], failures["reason"]))
    assert "0 bytes" in reasons["empty"]
    assert "no audio stream" in reasons["silent"]
    assert "no video stream" in reasons["audio_only"]
    assert reasons["short"].startswith("too_short: 0.20 s is shorter than")
    # no output, temp or otherwise, for failed clips
    produced = {p.stem for p in (out / "audio").iterdir()} | {
        p.stem for p in (out / "video").iterdir()
    }
    assert produced == set(good)


def test_stage_fails_naming_files_when_too_many_fail(media, tmp_path):
    root = _dataset(tmp_path, media, ["good", "empty", "text"])
    out = tmp_path / "interim"
    with pytest.raises(DataError) as err:
        run(_params(root, out, max_failure_fraction=0.25))
    message = str(err.value)
    assert "2/3 clips failed" in message
    assert "clips/empty.mp4" in message and "clips/text.mp4" in message
    assert "max_failure_fraction" in message
    assert not out.exists()  # nothing promoted
    # the failures table sits in the work dir for inspection
    assert len(pd.read_csv(tmp_path / "interim.partial" / "failures.csv")) == 2


def test_rerun_resumes_finished_clips(media, tmp_path):
    root = _dataset(tmp_path, media, ["good", "good2", "avi_clip", "text"])
    out = tmp_path / "interim"
    work = tmp_path / "interim.partial"
    with pytest.raises(DataError):  # 1/4 failed > 0: the stage stops before promoting
        run(_params(root, out, max_failure_fraction=0.0))
    finished = sorted(p.name for p in (work / "video").iterdir())
    assert finished == ["avi_clip.mp4", "good.mp4", "good2.mp4"]

    old = 1_000_000_000  # mark the finished outputs with an old mtime
    for sub in ("audio", "video"):
        for p in (work / sub).iterdir():
            os.utime(p, (old, old))
    # simulate a kill during avi_clip: its row is gone (media left half-written) ...
    (work / ".rows" / "avi_clip.json").unlink()
    (work / "video" / "avi_clip.mp4").write_bytes(b"half")
    # ... and an orphan temp file from an interrupted atomic write
    stale = work / "video" / ".good2.mp4.abc123.tmp.mp4"
    stale.write_bytes(b"junk")

    run(_params(root, out, max_failure_fraction=0.5))
    assert not work.exists() and not stale.exists()
    for clip in ("good", "good2"):  # reused, not re-extracted
        assert (out / "video" / f"{clip}.mp4").stat().st_mtime == old
        assert (out / "audio" / f"{clip}.wav").stat().st_mtime == old
    assert (out / "video" / "avi_clip.mp4").stat().st_mtime > old  # redone
    assert (out / "video" / "avi_clip.mp4").stat().st_size > 100
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest["clip_id"]) == ["avi_clip", "good", "good2"]
    assert (manifest["n_frames"] > 0).all()
    assert not list(out.rglob(".rows"))


def test_changed_settings_are_not_reused(media, tmp_path):
    root = _dataset(tmp_path, media, ["good", "text"])
    out = tmp_path / "interim"
    with pytest.raises(DataError):
        run(_params(root, out, max_failure_fraction=0.0))
    old = 1_000_000_000
    os.utime(tmp_path / "interim.partial" / "video" / "good.mp4", (old, old))
    run(_params(root, out, max_failure_fraction=0.5, max_side=64))
    assert (out / "video" / "good.mp4").stat().st_mtime > old
    row = pd.read_csv(out / "manifest.csv").iloc[0]
    assert (row["width"], row["height"]) == (64, 48)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="download"):
        run(_params(tmp_path / "raw", tmp_path / "interim"))


def test_audio_only_dataset_extracts_the_sound_alone(media, tmp_path):
    """dataset.json modalities [audio]: audio files and videos' sound tracks give a wav and
    `video` ""; a file without sound still fails (no_audio)."""
    root = _dataset(tmp_path, media, ["audio_only", "good", "silent"])
    DatasetInfo("t", ["neutral"], 2, 3, ["audio"]).write(root)
    out = tmp_path / "interim"
    run(_params(root, out, max_failure_fraction=0.5))
    manifest = MANIFEST.read(out).set_index("clip_id")
    assert sorted(manifest.index) == ["audio_only", "good"]
    for clip_id, row in manifest.iterrows():
        assert row["video"] == "" and row["n_frames"] == 0
        assert row["audio"] == f"audio/{clip_id}.wav"
        assert sf.info(out / row["audio"]).samplerate == 16000
    assert not list((out / "video").iterdir())
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures["clip_id"]) == ["silent"]
    assert failures["reason"][0].startswith("no_audio:")
    # a resumed run reuses a finished audio-only clip (no mp4 to look for)
    work = tmp_path / "work"
    job = Job("good", str(root / "clips/good.mp4"), "", str(work), ExtractConfig(), True)
    (work / "audio").mkdir(parents=True)
    (work / ".rows").mkdir()
    row = extract_job(job)
    assert isinstance(row, dict) and row["video"] == ""
    assert _finished_row(job) == row

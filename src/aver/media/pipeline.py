"""The extract stage: data/raw/index.csv -> data/interim/{audio,video}/ + manifest + failures.

Resumable (aver.resumable): clips are written into `<out>.partial/`; a clip is finished once its
row file (`.rows/<clip_id>.json`, written after both media files) exists, and a rerun skips it.
Failed clips are retried on a rerun. An audio-only dataset (dataset.json `modalities`:
["audio"]) gets the sound of each clip alone: its manifest rows have `video` "".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aver.config import ExtractConfig, Params
from aver.contracts import MANIFEST, RAW_INDEX, DatasetInfo
from aver.errors import AverError
from aver.failures import Failure, source_path
from aver.io.atomic import write_json
from aver.media.extract import MANIFEST_COLUMNS, extract_audio, extract_clip
from aver.output_settings import output_settings
from aver.resumable import ResumableRun

log = logging.getLogger(__name__)
STAGE = "extract"
ROWS = ".rows"


@dataclass(frozen=True)
class Job:
    """One clip to extract (picklable: sent to worker processes or Ray)."""

    clip_id: str
    src: str  # absolute or cwd-relative source path
    source: str  # the original file, as failures.csv names it (aver.failures.source_path)
    work: str  # the partial output directory
    cfg: ExtractConfig
    audio_only: bool = False  # an audio-only dataset (dataset.json): the sound alone, no mp4


def run(params: Params) -> None:
    """Extract 16 kHz mono WAV and constant-fps MP4 for every clip in data/raw/index.csv."""
    cfg = params.extract
    root = Path(params.data.root)
    table = RAW_INDEX.read(root, need=("path",))
    audio_only = not has_video(root)
    if audio_only:
        log.info("audio-only dataset (dataset.json modalities): extracting the sound alone")
    stage: ResumableRun[Job, dict[str, Any] | Failure] = ResumableRun(
        STAGE, cfg.out, output_settings(cfg), dirs=("audio", "video", ROWS), scratch=(ROWS,),
        log=log,
    )  # fmt: skip
    jobs = [
        Job(clip_id, str(root / rel), source_path(root, rel), str(stage.work), cfg, audio_only)
        for clip_id, rel in zip(table["clip_id"], table["path"])
    ]
    results = stage.results(
        jobs, _finished_row, extract_job, executor=cfg.executor, workers=cfg.workers,
        verb="extracted",
    )  # fmt: skip
    rows = {job.clip_id: r for job, r in results if not isinstance(r, Failure)}
    failures = [r for _, r in results if isinstance(r, Failure)]
    manifest = pd.DataFrame([rows[k] for k in sorted(rows)], columns=MANIFEST_COLUMNS)
    MANIFEST.write(stage.work, manifest)
    log.info(
        "extract: %d ok (%d reused), %d failed of %d clips",
        len(rows), stage.reused, len(failures), len(table),
    )  # fmt: skip
    stage.record_failures(failures, len(table), cfg.max_failure_fraction)
    log.info("wrote %s", stage.promote())


def has_video(root: Path) -> bool:
    """dataset.json's `modalities` include video (no dataset.json, e.g. a hand-made index: yes)."""
    return not (root / DatasetInfo.FILE).is_file() or DatasetInfo.read(root).has_video


def extract_job(job: Job) -> dict[str, Any] | Failure:
    """Extract one clip; never raises: problems come back as a Failure."""
    work = Path(job.work)
    audio = Path("audio") / f"{job.clip_id}.wav"
    video = Path("video") / f"{job.clip_id}.mp4"
    try:
        if job.audio_only:
            row = extract_audio(job.src, work / audio, job.cfg)
        else:
            row = extract_clip(job.src, work / audio, work / video, job.cfg)
    except AverError as err:
        detail = getattr(err, "short", None) or str(err)
        return Failure(job.clip_id, job.source, STAGE, detail)
    except Exception as err:  # one odd clip must not stop the stage
        return Failure(job.clip_id, job.source, STAGE, f"{type(err).__name__}: {err}")
    row = {
        "clip_id": job.clip_id,
        **row,
        "audio": audio.as_posix() if row["audio"] else "",
        "video": video.as_posix() if row["video"] else "",
    }
    write_json(work / ROWS / f"{job.clip_id}.json", row)
    return row


def _finished_row(job: Job) -> dict[str, Any] | None:
    """The manifest row of a clip an earlier run (same settings: ResumableRun) finished."""
    work = Path(job.work)
    path = work / ROWS / f"{job.clip_id}.json"
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not all((work / row[m]).is_file() for m in ("audio", "video") if row[m]):
        return None
    return row

"""The extract stage: data/raw/index.csv -> data/interim/{audio,video}/ + manifest + failures.

Resumable: clips are written into `<out>.partial/`; a clip is finished once its row file
(`.rows/<clip_id>.json`, written after both media files) exists, and a rerun skips it. Failed
clips are retried on a rerun.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aver.config import ExtractConfig, Params
from aver.errors import AverError, DataError
from aver.failures import Failure, check_failure_fraction, source_path, write_failures
from aver.io.atomic import partial_dir, promote_dir, write_csv, write_json
from aver.media.extract import MANIFEST_COLUMNS, extract_clip
from aver.output_settings import output_settings
from aver.parallel import imap_unordered

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


def run(params: Params) -> None:
    """Extract 16 kHz mono WAV and constant-fps MP4 for every clip in data/raw/index.csv."""
    cfg = params.extract
    root = Path(params.data.root)
    out = Path(cfg.out)
    table = read_index(root / "index.csv")
    work = partial_dir(out)
    for sub in ("audio", "video", ROWS):
        (work / sub).mkdir(exist_ok=True)

    rows: dict[str, dict[str, Any]] = {}
    jobs: list[Job] = []
    for clip_id, rel in zip(table["clip_id"], table["path"]):
        done = _finished_row(work, clip_id, cfg)
        if done is not None:
            rows[clip_id] = done
        else:
            jobs.append(Job(clip_id, str(root / rel), source_path(root, rel), str(work), cfg))
    reused = len(rows)
    if reused:
        log.info("resuming: %d of %d clips already extracted in %s", reused, len(table), work)

    failures: list[Failure] = []
    for _, result in imap_unordered(
        extract_job, jobs, executor=cfg.executor, workers=cfg.workers, desc="extract"
    ):
        if isinstance(result, Failure):
            failures.append(result)
        else:
            rows[result["clip_id"]] = result

    manifest = pd.DataFrame([rows[k] for k in sorted(rows)], columns=MANIFEST_COLUMNS)
    write_csv(work / "manifest.csv", manifest)
    write_failures(work / "failures.csv", failures)
    log.info(
        "extract: %d ok (%d reused), %d failed of %d clips",
        len(rows),
        reused,
        len(failures),
        len(table),
    )
    for f in sorted(failures, key=lambda f: f.clip_id):
        log.warning("failed %s: %s", f.path, f.reason)
    check_failure_fraction(
        sorted(failures, key=lambda f: f.clip_id),
        len(table),
        cfg.max_failure_fraction,
        STAGE,
        work / "failures.csv",
    )
    shutil.rmtree(work / ROWS)
    promote_dir(work, out)
    log.info("wrote %s", out)


def read_index(path: Path) -> pd.DataFrame:
    """The download stage's index.csv (clip_id, path, ...), validated."""
    if not path.is_file():
        raise DataError(
            "index.csv not found",
            path=path,
            fix="run the download stage first (dvc repro download)",
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"clip_id", "path"} - set(table.columns)
    if missing:
        raise DataError(
            f"index.csv lacks columns {sorted(missing)}",
            path=path,
            fix="regenerate it with the download stage (dvc repro download)",
        )
    dupes = sorted(table["clip_id"][table["clip_id"].duplicated()].unique())
    if dupes:
        raise DataError(
            f"duplicate clip_id values: {dupes[:5]}",
            path=path,
            fix="clip ids must be unique; regenerate index.csv",
        )
    return table


def extract_job(job: Job) -> dict[str, Any] | Failure:
    """Extract one clip; never raises: problems come back as a Failure."""
    work = Path(job.work)
    audio = Path("audio") / f"{job.clip_id}.wav"
    video = Path("video") / f"{job.clip_id}.mp4"
    try:
        row = extract_clip(job.src, work / audio, work / video, job.cfg)
    except AverError as err:
        detail = getattr(err, "short", None) or str(err)
        return Failure(job.clip_id, job.source, STAGE, detail)
    except Exception as err:  # one odd clip must not stop the stage
        return Failure(job.clip_id, job.source, STAGE, f"{type(err).__name__}: {err}")
    row = {"clip_id": job.clip_id, **row, "audio": audio.as_posix(), "video": video.as_posix()}
    write_json(work / ROWS / f"{job.clip_id}.json", {**row, "settings": _settings(job.cfg)})
    return row


def _settings(cfg: ExtractConfig) -> dict[str, Any]:
    """The settings a finished clip is reused under (aver.output_settings)."""
    return output_settings(cfg)


def _finished_row(work: Path, clip_id: str, cfg: ExtractConfig) -> dict[str, Any] | None:
    """The manifest row of a clip finished by an earlier run with the same settings, else None."""
    path = work / ROWS / f"{clip_id}.json"
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if row.pop("settings", None) != _settings(cfg):
        return None
    if not ((work / row["audio"]).is_file() and (work / row["video"]).is_file()):
        return None
    return row

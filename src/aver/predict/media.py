"""A file for `aver predict`: probed, and converted by the extract stage's code into a
temporary directory; media errors restated for the command line. Light to import (no torch):
`aver.predict.early` runs it while torch loads."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aver.config import ExtractConfig
from aver.errors import DataError

if TYPE_CHECKING:
    from aver.media.probe import MediaError, MediaInfo
    from aver.predict.modalities import InputPlan

VIDEO_FIX = "pass a playable video file (mp4, avi, mkv, flv, ...) with a sound track"


def check_media(video: Path) -> MediaInfo:
    """Probe `video` (aver.media.probe) so unusable input fails before the model loads; a file
    without an audio or a video stream passes (the model decides)."""
    from aver.media.probe import MediaError, probe

    try:
        return probe(video, need_audio=False, need_video=False)
    except MediaError as err:
        raise media_error(err, video) from None


def media_error(err: MediaError, video: Path, min_duration_s: float = 0.0) -> DataError:
    """A MediaError restated for `aver predict` (the pipeline's fix mentions failures.csv)."""
    from aver.media.probe import Unusable

    fixes = {
        Unusable.MISSING: "check the path",
        Unusable.NO_AUDIO: "the model needs the voice: pass the video with its sound track",
        Unusable.NO_VIDEO: "the model needs the face: pass a video, not an audio file",
        Unusable.TOO_SHORT: f"pass a clip of at least {min_duration_s:g} s",
    }
    return DataError(err.short, path=video, fix=fixes.get(err.reason, VIDEO_FIX))


def extract_media(
    video: Path, cfg: ExtractConfig, work: Path, *, missing_ok: bool = False
) -> dict[str, Any]:
    """Run the extract stage's conversion on `video` into `work`; its manifest row (`audio` or
    `video` "" when `missing_ok` and the file lacks that stream)."""
    from aver.media.extract import ExtractError, extract_clip
    from aver.media.probe import MediaError

    extra = {"missing_ok": True} if missing_ok else {}
    try:
        return extract_clip(video, work / "audio.wav", work / "video.mp4", cfg, **extra)
    except MediaError as err:
        raise media_error(err, video, cfg.min_duration_s) from None
    except ExtractError as err:
        raise DataError(err.detail, path=video, fix=VIDEO_FIX) from None


@dataclass
class Extracted:
    """A video probed and converted by the extract stage's code into a temporary directory
    (removed by `cleanup`): its manifest row and the plan of what to read."""

    video: Path
    row: dict[str, Any]
    plan: InputPlan
    work: tempfile.TemporaryDirectory[str]

    def cleanup(self) -> None:
        self.work.cleanup()

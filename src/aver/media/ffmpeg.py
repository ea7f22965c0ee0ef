"""Find the ffmpeg binary: $AVER_FFMPEG, the system ffmpeg on PATH, else imageio-ffmpeg's."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from aver.errors import AverError


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg executable to run.

    Order: $AVER_FFMPEG, `ffmpeg` on PATH, the binary shipped by the imageio-ffmpeg wheel (works
    without root or a system install).
    """
    override = os.environ.get("AVER_FFMPEG")
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise AverError(
                "AVER_FFMPEG does not point to an executable file",
                path=override,
                fix="unset AVER_FFMPEG or set it to the path of an ffmpeg binary",
            )
        return override
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        raise AverError(
            f"no ffmpeg binary found (not on PATH, imageio-ffmpeg: {err})",
            fix="install ffmpeg (apt-get install ffmpeg) or `pip install imageio-ffmpeg`, "
            "or set AVER_FFMPEG to an ffmpeg binary",
        ) from None

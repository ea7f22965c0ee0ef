"""A battery of broken and odd media files made from good demo clips with the real ffmpeg.

`build_battery(good, dest)` writes one file per `BadClip` into `dest` and returns them; each
names the stage that must reject it (or None when it is valid) and words its reason must hold.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aver.media.ffmpeg import ffmpeg_exe

# The portrait clip: the good clip padded to PORTRAIT_W x PORTRAIT_H (face in the middle), stored
# turned 90 degrees clockwise with display rotation metadata that turns it back upright.
PORTRAIT_W, PORTRAIT_H = 224, 288


@dataclass(frozen=True)
class BadClip:
    name: str  # file stem (= clip_id)
    stage: str | None  # the stage whose failures.csv must list it; None: a valid clip
    keywords: tuple[str, ...]  # words its failure reason must contain (lower case)


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg binary aver uses; raise with its stderr on failure."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")


def _zero_bytes(good: Path, dst: Path) -> None:
    dst.write_bytes(b"")


def _truncated(good: Path, dst: Path) -> None:
    """The first 40% of a good mp4 (the moov atom sits at the end: nothing to index)."""
    data = good.read_bytes()
    dst.write_bytes(data[: int(len(data) * 0.4)])


def _video_only(good: Path, dst: Path) -> None:
    ffmpeg("-i", str(good), "-map", "0:v", "-c", "copy", str(dst))


def _audio_only(good: Path, dst: Path) -> None:
    ffmpeg("-i", str(good), "-map", "0:a", "-c", "copy", "-f", "mp4", str(dst))


def _text(good: Path, dst: Path) -> None:
    dst.write_text("path,label,speaker\nthis is not a video, just text\n" * 20)


def _short(good: Path, dst: Path) -> None:
    """0.2 s of a good clip, re-encoded."""
    ffmpeg(
        "-i", str(good), "-t", "0.2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
        str(dst),
    )  # fmt: skip


def _portrait(good: Path, dst: Path) -> None:
    """Valid: upright portrait content stored sideways plus a 90-degree display rotation."""
    sideways = dst.with_name(f"{dst.stem}.sideways.mp4")
    top = (PORTRAIT_H - 224) // 2
    ffmpeg(
        "-i", str(good),
        "-vf", f"scale=224:224,pad={PORTRAIT_W}:{PORTRAIT_H}:0:{top}:color=gray,transpose=clock",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "copy", str(sideways),
    )  # fmt: skip
    # display_rotation: degrees counter-clockwise to turn the stored picture for display.
    ffmpeg("-display_rotation", "90", "-i", str(sideways), "-c", "copy", str(dst))
    sideways.unlink()


def _no_face(good: Path, dst: Path) -> None:
    """A test pattern with a tone: decodes fine, holds no face."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=224x224:rate=25:duration=1.6",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=1.6:sample_rate=16000",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(dst),
    )  # fmt: skip


BATTERY: dict[str, tuple[BadClip, Callable[[Path, Path], None]]] = {
    c.name: (c, make)
    for c, make in [
        (BadClip("zero_bytes", "extract", ("empty", "0 bytes")), _zero_bytes),
        (BadClip("truncated", "extract", ("truncated",)), _truncated),
        (BadClip("video_only", "extract", ("no audio",)), _video_only),
        (BadClip("audio_only", "extract", ("no video",)), _audio_only),
        (BadClip("text_file", "extract", ("not a media file",)), _text),
        (BadClip("short_clip", "extract", ("shorter than", "min_duration_s")), _short),
        (BadClip("portrait_rotated", None, ()), _portrait),
        (BadClip("no_face", "align", ("face found in 0%", "min_detection_rate")), _no_face),
    ]
}


def build_battery(good: Path, dest: Path) -> list[tuple[BadClip, Path]]:
    """Write every battery file (`<name>.mp4`) into `dest`, made from the good clip `good`."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for clip, make in BATTERY.values():
        path = dest / f"{clip.name}.mp4"
        make(good, path)
        out.append((clip, path))
    return out


def copy_good(clips: list[Path], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(c, dest / c.name)) for c in clips]

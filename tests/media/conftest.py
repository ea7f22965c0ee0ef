"""Small generated media (lavfi sources through the real ffmpeg binary) for the media tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from aver.media.ffmpeg import ffmpeg_exe

# Audio-visual event used by the sync tests: presentation time of the beep and the square.
EVENT_S = 0.8


def ffmpeg(*args: str | Path) -> None:
    """Run the real ffmpeg binary; fail the test with its stderr when it fails."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}\n{proc.stderr}"


def lavfi_video(spec: str) -> list[str]:
    return ["-f", "lavfi", "-i", spec]


def event_video(path: Path, square_at: float, duration: float = 2.0) -> None:
    """Black 160x120 30 fps video; a white square is on screen from `square_at` (local time)."""
    ffmpeg(
        *lavfi_video(
            f"color=black:s=160x120:r=30:d={duration},"
            f"drawbox=x=40:y=30:w=80:h=60:color=white:t=fill:enable='gte(t,{square_at})'"
        ),
        "-c:v", "libx264", "-pix_fmt", "yuv420p", path,
    )  # fmt: skip


def event_audio(path: Path, beep_at: float, codec: str, rate: int, duration: float = 2.0) -> None:
    """Silence, then a 1 kHz tone (amplitude 0.5) from `beep_at` (local time)."""
    ffmpeg(
        "-f", "lavfi", "-i",
        f"aevalsrc='if(gte(t,{beep_at}),0.5*sin(2*PI*1000*t),0)':s={rate}:d={duration}",
        "-c:a", codec, path,
    )  # fmt: skip


@pytest.fixture(scope="session")
def make_sync_clip(tmp_path_factory) -> Callable[[str, float, float], Path]:
    """Build a clip whose video stream starts at `v_start` and audio at `a_start` (seconds),
    both showing/sounding the event at presentation time EVENT_S."""
    base = tmp_path_factory.mktemp("sync")

    def make(container: str, v_start: float, a_start: float) -> Path:
        codec, ext, rate = (
            ("aac", "m4a", 44100) if container == "mp4" else ("pcm_s16le", "wav", 48000)
        )
        video = base / f"v-{v_start}.mp4"
        audio = base / f"a-{a_start}-{codec}.{ext}"
        event_video(video, EVENT_S - v_start)
        event_audio(audio, EVENT_S - a_start, codec, rate)
        out = base / f"sync-{v_start}-{a_start}.{container}"
        ffmpeg(
            "-itsoffset", v_start, "-i", video, "-itsoffset", a_start, "-i", audio,
            "-map", "0:v", "-map", "1:a", "-c", "copy", out,
        )  # fmt: skip
        return out

    return make


def _av(path: Path, video: list[str], audio: list[str], out_args: list[str], d: float = 1.2):
    ffmpeg(
        *lavfi_video(video[0]), "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate="
        f"{audio[0]}:duration={d}", *video[1:], *audio[1:], *out_args, path,
    )  # fmt: skip


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Good inputs in several containers and shapes, plus bad ones. Names -> paths."""
    d = tmp_path_factory.mktemp("media")
    files: dict[str, Path] = {}

    def add(name: str) -> Path:
        files[name.split(".")[0]] = d / name
        return d / name

    src = "testsrc=size=160x120:rate=25:duration=1.2"
    _av(
        add("good.mp4"),
        [src, "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        ["44100", "-c:a", "aac"],
        [],
    )
    _av(
        add("good2.mp4"),
        [src.replace("160x120", "128x96"), "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        ["16000", "-c:a", "aac"],
        [],
    )
    # CREMA-D style: FLV with Sorenson video and MP3 audio.
    _av(add("flash.flv"), [src, "-c:v", "flv"], ["22050", "-c:a", "libmp3lame"], [])
    _av(
        add("avi_clip.avi"),
        [src.replace("rate=25", "rate=15"), "-c:v", "mpeg4"],
        ["22050", "-c:a", "pcm_s16le"],
        [],
    )
    _av(
        add("mkv_clip.mkv"),
        [src.replace("rate=25", "rate=24"), "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        ["48000", "-c:a", "libopus"],
        [],
    )
    # Variable frame rate: irregular gaps between frames.
    _av(
        add("vfr.mp4"),
        [
            src.replace("rate=25", "rate=30"),
            "-vf",
            "select='lt(mod(n\\,6)\\,3)+lt(n\\,4)'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
        ["44100", "-c:a", "aac"],
        [],
    )
    # Odd sizes: one above max_side (320), one below.
    _av(
        add("odd_big.mp4"),
        [src.replace("160x120", "321x241"), "-c:v", "libx264", "-pix_fmt", "yuv444p"],
        ["44100", "-c:a", "aac"],
        [],
    )
    _av(
        add("odd_small.mkv"),
        [src.replace("160x120", "99x75"), "-c:v", "ffv1"],
        ["44100", "-c:a", "pcm_s16le"],
        [],
    )
    # Phone-style portrait: upright 112x200 with a white band at the top, stored rotated to
    # landscape (200x112) with a display matrix that turns it back upright.
    upright = "color=gray:s=112x200:r=25:d=1.2,drawbox=x=0:y=0:w=112:h=40:color=white:t=fill"
    stored = d / "stored.mp4"
    _av(
        stored,
        [upright, "-vf", "transpose=clock", "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        ["44100", "-c:a", "aac"],
        [],
    )
    ffmpeg("-display_rotation", "90", "-i", stored, "-c", "copy", add("portrait.mp4"))

    # Bad inputs.
    add("empty.mp4").write_bytes(b"")
    add("text.mp4").write_text("this is a text file, not a video\n")
    full = files["good"].read_bytes()
    add("truncated.mp4").write_bytes(full[: len(full) // 2])  # moov atom (at the end) is lost
    ffmpeg(*lavfi_video(src), "-c:v", "libx264", "-pix_fmt", "yuv420p", add("silent.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1.2", "-c:a", "aac", add("audio_only.m4a"))
    _av(
        add("short.mp4"),
        [src.replace("duration=1.2", "duration=0.2"), "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        ["44100", "-c:a", "aac"],
        [],
        d=0.2,
    )
    return files


GOOD = ["good", "good2", "flash", "avi_clip", "mkv_clip", "vfr", "odd_big", "odd_small", "portrait"]
BAD = {  # name -> expected typed reason
    "empty": "empty",
    "text": "not_media",
    "truncated": "truncated",
    "silent": "no_audio",
    "audio_only": "no_video",
    "short": "too_short",
}

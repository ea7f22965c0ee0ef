"""One clip -> 16 kHz mono PCM16 WAV + constant-fps H.264 MP4 on one shared time axis.

Time axis and trimming/padding rule:

* t = 0 is the presentation time of the first decoded video frame of the source.
* The audio offset is `d = first audio sample time - first video frame time`, measured by
  `aver.media.probe` on decoded frames (so container start times, mp4 edit lists, AAC priming
  and per-stream start offsets are all accounted for). When d > 0 the audio is padded at the
  start with d seconds of silence; when d < 0 the first -d seconds of audio are dropped. Gaps
  inside the audio stream are filled with silence (`aresample=async=1`), so later samples keep
  their timestamps.
* The video is resampled to constant `extract.fps` with the `fps` filter: output frame k shows
  the source frame on screen at t = k / fps (nearest-timestamp rounding).
* Both streams are cut to the shorter one: the video keeps N = floor(audio_s * fps) frames at
  most (fewer when the video ends first), and the audio is then cut to exactly
  round(N * sample_rate / fps) samples. Both outputs therefore last N / fps seconds.

The video is rotated upright (ffmpeg applies the display matrix; no rotation metadata remains),
scaled so its longer side is <= `extract.max_side` with square pixels and even dimensions,
encoded as H.264 yuv420p without an audio track. Outputs are written atomically.

A source with one stream (`extract_clip(..., missing_ok=True)`) keeps that stream whole on its
own time axis (t = 0 its first frame or sample); the missing output is not written.
`extract_audio` does the same for the sound of any source (audio-only datasets).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import ffmpeg
import numpy as np
import soundfile as sf

from aver.config import ExtractConfig
from aver.contracts import MANIFEST
from aver.errors import DataError
from aver.io.atomic import atomic_path
from aver.media.ffmpeg import ffmpeg_exe
from aver.media.probe import MediaInfo, probe

MANIFEST_COLUMNS = list(MANIFEST.columns)  # aver.contracts


class ExtractError(DataError):
    """ffmpeg could not convert a clip; `detail` is the readable cause (stderr tail)."""

    def __init__(self, detail: str, path: str | Path):
        self.detail = detail
        super().__init__(detail, path=path, fix="check the file plays (ffmpeg -i FILE -f null -)")

    @property
    def short(self) -> str:
        return self.detail


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Even (width, height) with the same aspect ratio and longer side <= max_side."""
    scale = min(1.0, max_side / max(width, height))
    w = max(2, 2 * math.floor(width * scale / 2 + 0.5))
    h = max(2, 2 * math.floor(height * scale / 2 + 0.5))
    while max(w, h) > max_side:  # rounding up may overshoot an odd max_side
        w, h = (w - 2 if w >= h else w), (h - 2 if h >= w else h)
    return w, h


def extract_clip(
    src: str | Path,
    audio_out: str | Path,
    video_out: str | Path,
    cfg: ExtractConfig,
    *,
    missing_ok: bool = False,
) -> dict[str, Any]:
    """Convert `src` into `audio_out` (.wav) and `video_out` (.mp4); return its manifest row.

    Raises MediaError (unusable input, typed reason) or ExtractError (ffmpeg failed). The row
    holds every manifest column except `clip_id`; `audio`/`video` are the paths given here.
    With `missing_ok`, a source without an audio (video) stream gives the row with `audio`
    (`video`) "" and writes no wav (mp4); see `_one_stream_row` for the other columns.
    Without it, such a source is MediaError NO_AUDIO / NO_VIDEO.
    """
    src = Path(src)
    info = probe(
        src, min_duration_s=cfg.min_duration_s, need_audio=not missing_ok,
        need_video=not missing_ok,
    )  # fmt: skip
    if info.video is None:
        return _audio_only(src, info, audio_out, cfg)
    if info.audio is None:
        return _video_only(src, info, video_out, cfg)
    audio = _decode_audio(src, info, cfg.sample_rate)
    max_frames = math.floor(len(audio) / cfg.sample_rate * cfg.fps + 1e-6)
    if max_frames < 1:
        raise ExtractError("audio is shorter than one video frame after alignment", src)
    with _written_video(src, info, video_out, cfg, max_frames) as (n_frames, width, height):
        n_samples = round(n_frames * cfg.sample_rate / cfg.fps)
        with atomic_path(audio_out, suffix=".wav") as tmp_audio:
            samples = np.pad(audio[:n_samples], (0, max(0, n_samples - len(audio))))
            sf.write(tmp_audio, samples, cfg.sample_rate, subtype="PCM_16", format="WAV")
    return {
        "audio": str(audio_out),
        "video": str(video_out),
        "duration_s": round(n_frames / cfg.fps, 6),
        "fps": cfg.fps,
        "n_frames": n_frames,
        "width": width,
        "height": height,
        "sample_rate": cfg.sample_rate,
        "src_width": info.video.width,
        "src_height": info.video.height,
        "src_fps": round(info.video.avg_fps or info.video.real_fps or 0.0, 6),
        "rotation": info.video.rotation,
        "src_format": info.format_name,
    }


def extract_audio(src: str | Path, audio_out: str | Path, cfg: ExtractConfig) -> dict[str, Any]:
    """The sound of `src` alone (an audio file, or a video's sound track; any video is ignored)
    into `audio_out` (.wav); its manifest row has `video` "" (an audio-only dataset).

    Raises MediaError NO_AUDIO when `src` has no audio stream."""
    src = Path(src)
    info = probe(src, min_duration_s=cfg.min_duration_s, need_video=False)
    return _audio_only(src, info, audio_out, cfg)


def _audio_only(src: Path, info: MediaInfo, audio_out: str | Path, cfg: ExtractConfig):
    """The whole audio stream (t = 0 its first sample), no mp4."""
    samples = _decode_audio(src, info, cfg.sample_rate, own_axis=True)
    if len(samples) < 1:
        raise ExtractError("ffmpeg decoded no audio samples", src)
    with atomic_path(audio_out, suffix=".wav") as tmp_audio:
        sf.write(tmp_audio, samples, cfg.sample_rate, subtype="PCM_16", format="WAV")
    row = _one_stream_row(info, cfg, len(samples) / cfg.sample_rate)
    return {**row, "audio": str(audio_out), "video": ""}


def _video_only(src: Path, info: MediaInfo, video_out: str | Path, cfg: ExtractConfig):
    """A source without audio: the video as usual (t = 0 its first frame), no wav."""
    assert info.video is not None
    max_frames = max(1, math.floor(info.video.duration_s * cfg.fps + 1e-6))
    with _written_video(src, info, video_out, cfg, max_frames) as (n_frames, width, height):
        pass
    row = _one_stream_row(info, cfg, n_frames / cfg.fps)
    return {
        **row,
        "audio": "",
        "video": str(video_out),
        "n_frames": n_frames,
        "width": width,
        "height": height,
        "src_width": info.video.width,
        "src_height": info.video.height,
        "src_fps": round(info.video.avg_fps or info.video.real_fps or 0.0, 6),
        "rotation": info.video.rotation,
    }


@contextmanager
def _written_video(
    src: Path, info: MediaInfo, video_out: str | Path, cfg: ExtractConfig, max_frames: int
) -> Iterator[tuple[int, int, int]]:
    """Encode at most `max_frames` frames of `src` into `video_out`, atomically: the file is
    in place once the block (which may write the matching audio) ends without an error.
    Yields (frames written, width, height)."""
    assert info.video is not None
    width, height = output_size(*info.video.display_size, cfg.max_side)
    with atomic_path(video_out, suffix=".mp4") as tmp_video:
        _encode_video(src, info, tmp_video, cfg, width, height, max_frames)
        n_frames = _count_frames(tmp_video)
        if n_frames < 1:
            raise ExtractError("ffmpeg wrote no video frames", src)
        yield n_frames, width, height


def _one_stream_row(info: MediaInfo, cfg: ExtractConfig, duration_s: float) -> dict[str, Any]:
    """Manifest columns of a one-stream clip; the absent video's columns are 0
    (`n_frames`, sizes, `src_fps`, `rotation`)."""
    return {
        "duration_s": round(duration_s, 6),
        "fps": cfg.fps,
        "n_frames": 0,
        "width": 0,
        "height": 0,
        "sample_rate": cfg.sample_rate,
        "src_width": 0,
        "src_height": 0,
        "src_fps": 0.0,
        "rotation": 0,
        "src_format": info.format_name,
    }


def _decode_audio(
    src: Path, info: MediaInfo, sample_rate: int, *, own_axis: bool = False
) -> np.ndarray:
    """Mono int16 samples on the video's time axis (start padded/trimmed, see module doc);
    `own_axis` (or no video): t = 0 is the first audio sample."""
    assert info.audio is not None
    own_axis = own_axis or info.video is None
    offset = 0.0 if own_axis else info.audio.start_s - info.video.start_s  # type: ignore[union-attr]
    stream = (
        ffmpeg.input(_file_url(src))[str(info.audio.index)]
        .filter("asetpts", f"PTS-STARTPTS+({offset:.6f}/TB)")
        .filter("aresample", sample_rate, **{"async": 1, "first_pts": 0})
        .filter("aformat", sample_fmts="s16", channel_layouts="mono")
        .output("pipe:", format="s16le", acodec="pcm_s16le", ac=1, ar=sample_rate)
    )
    pcm = _run(stream, src, "audio")
    return np.frombuffer(pcm, dtype="<i2")


def _encode_video(
    src: Path,
    info: MediaInfo,
    dst: Path,
    cfg: ExtractConfig,
    width: int,
    height: int,
    max_frames: int,
) -> None:
    assert info.video is not None
    rate = Fraction(cfg.fps).limit_denominator(1001)
    stream = (
        ffmpeg.input(_file_url(src))[str(info.video.index)]  # ffmpeg applies rotation (autorotate)
        .filter("setpts", "PTS-STARTPTS")
        .filter("fps", fps=f"{rate.numerator}/{rate.denominator}", round="near")
        .filter("scale", width, height, flags="bicubic")
        .filter("setsar", "1")
        .filter("format", "yuv420p")
        .output(
            str(dst),
            vcodec="libx264",
            preset=cfg.preset,
            crf=cfg.crf,
            pix_fmt="yuv420p",
            an=None,
            sn=None,
            dn=None,
            map_metadata=-1,
            map_chapters=-1,
            f="mp4",
            # one x264 thread, cpu-independent: the same bytes on every run (a resumed extract
            # must equal a clean one; multi-threaded x264 output varied between runs)
            threads=1,
            **{
                "frames:v": max_frames,
                "fps_mode": "passthrough",
                "x264-params": "cpu-independent=1",
            },
        )
    )
    _run(stream, src, "video")


def _file_url(path: Path) -> str:
    """`file:` URL so names with ':' or a leading '-' are not read as protocols or options."""
    return f"file:{path.resolve()}"


def _run(stream: Any, src: Path, what: str) -> bytes:
    try:
        out, _ = stream.run(
            cmd=[ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error"],
            capture_stdout=True,
            capture_stderr=True,
            overwrite_output=True,
        )
    except ffmpeg.Error as err:
        tail = " | ".join((err.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:])
        detail = f"ffmpeg failed on the {what} stream: {tail or 'no message'}"
        raise ExtractError(detail, src) from None
    return out


def _count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for p in container.demux(stream) if p.size)

"""Probe a media file with PyAV: container, streams, timing, rotation; typed reasons when unusable.

Timing comes from one demux pass over the chosen streams (packet timestamps, not header
estimates), so truncated files and stream start offsets are seen as they really are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import cast

import av

from aver.errors import DataError

ATTACHED_PIC = 1024  # AV_DISPOSITION_ATTACHED_PIC: cover art, not a video track

# Leading bytes of common containers: a file that starts like media but cannot be opened is
# reported as truncated/corrupt rather than "not media".
_MAGIC = {
    "MP4/MOV": lambda b: b[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"),
    "FLV": lambda b: b[:3] == b"FLV",
    "AVI/WAV": lambda b: b[:4] == b"RIFF",
    "Matroska/WebM": lambda b: b[:4] == b"\x1a\x45\xdf\xa3",
    "Ogg": lambda b: b[:4] == b"OggS",
    "MPEG-TS": lambda b: b[:1] == b"\x47",
}


class Unusable(StrEnum):
    """Why a media file cannot be used."""

    MISSING = "missing"
    EMPTY = "empty"
    NOT_MEDIA = "not_media"
    TRUNCATED = "truncated"
    UNDECODABLE = "undecodable"
    NO_AUDIO = "no_audio"
    NO_VIDEO = "no_video"
    TOO_SHORT = "too_short"


class MediaError(DataError):
    """A media file is unusable; `reason` is the typed cause, `detail` the readable message."""

    def __init__(self, reason: Unusable, detail: str, path: str | Path):
        self.reason = reason
        self.detail = detail
        super().__init__(
            f"{reason.value}: {detail}",
            path=path,
            fix="replace or remove the file (it is skipped and listed in failures.csv)",
        )

    @property
    def short(self) -> str:
        """`reason: detail`, for failures tables (the path is a separate column)."""
        return f"{self.reason.value}: {self.detail}"


@dataclass(frozen=True)
class VideoInfo:
    index: int
    codec: str
    width: int  # stored (coded) frame size, before rotation
    height: int
    sar: float  # sample (pixel) aspect ratio, 1.0 = square pixels
    avg_fps: float | None
    real_fps: float | None  # r_frame_rate: the lowest rate that represents all timestamps
    n_frames: int  # packets demuxed
    rotation: int  # display rotation, degrees counter-clockwise, one of 0/90/180/270
    start_s: float  # presentation time of the first frame
    end_s: float  # presentation time at which the last frame ends

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as displayed: pixel aspect and rotation applied."""
        w, h = self.width * self.sar, float(self.height)
        if self.rotation in (90, 270):
            w, h = h, w
        return round(w), round(h)


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class MediaInfo:
    path: str
    format_name: str
    size_bytes: int
    header_duration_s: float | None
    start_s: float | None  # container start time
    video: VideoInfo | None
    audio: AudioInfo | None

    @property
    def duration_s(self) -> float:
        """Usable duration on the extract time axis: first video frame to the earlier stream end."""
        if self.video and self.audio:
            return max(0.0, min(self.video.end_s, self.audio.end_s) - self.video.start_s)
        stream = self.video or self.audio
        return stream.duration_s if stream else 0.0


def probe(
    path: str | Path,
    *,
    min_duration_s: float = 0.0,
    need_audio: bool = True,
    need_video: bool = True,
) -> MediaInfo:
    """Describe `path`; raise MediaError (typed `reason`) when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(Unusable.MISSING, "file not found", path)
    size = path.stat().st_size
    if size == 0:
        raise MediaError(Unusable.EMPTY, "file is empty (0 bytes)", path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError) as err:
        raise _open_error(path, err) from None
    with container:
        info = _describe(container, path, size)
    if info.video is None and info.audio is None:
        raise MediaError(Unusable.NOT_MEDIA, "no audio or video stream found", path)
    if need_video and info.video is None:
        raise MediaError(Unusable.NO_VIDEO, "no video stream", path)
    if need_audio and info.audio is None:
        raise MediaError(Unusable.NO_AUDIO, "no audio stream", path)
    if info.duration_s < min_duration_s:
        raise MediaError(
            Unusable.TOO_SHORT,
            f"{info.duration_s:.2f} s is shorter than extract.min_duration_s={min_duration_s:g} s",
            path,
        )
    return info


def _open_error(path: Path, err: Exception) -> MediaError:
    with open(path, "rb") as fh:
        head = fh.read(16)
    for kind, matches in _MAGIC.items():
        if len(head) >= 8 and matches(head):
            return MediaError(
                Unusable.TRUNCATED,
                f"looks like {kind} but cannot be opened (truncated or corrupt): {_msg(err)}",
                path,
            )
    return MediaError(Unusable.NOT_MEDIA, f"not a media file: {_msg(err)}", path)


def _msg(err: Exception) -> str:
    # PyAV formats "[Errno N] message: '<path>'"; keep the message (the path is reported apart).
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(err))
    return text.split(": '", 1)[0] if ": '" in text else text


def _pick(streams, kind: str):
    for stream in streams:
        if stream.type == kind and not (kind == "video" and stream.disposition & ATTACHED_PIC):
            return stream
    return None


def _describe(container, path: Path, size: int) -> MediaInfo:
    """MediaInfo from one demux pass over the chosen streams (start, end, frames, rotation).

    Long: one pass over the packets fills the per-stream first/last/count tables that the
    decode check, the start/end times and the duration fallbacks all read.
    """
    vstream = _pick(container.streams, "video")
    astream = _pick(container.streams, "audio")
    header = container.duration / 1e6 if container.duration else None
    cstart = container.start_time / 1e6 if container.start_time is not None else None
    chosen = [s for s in (vstream, astream) if s is not None]
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    count: dict[int, int] = {}
    fallback = _fallback_durations(vstream)
    # First decoded frame per stream (true start, rotation).
    decoded: dict[int, av.AudioFrame | av.VideoFrame] = {}
    demux_error: str | None = None
    decode_error: str | None = None
    try:
        for packet in container.demux(chosen) if chosen else ():
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None or packet.size == 0:
                continue
            idx = packet.stream.index
            t0 = float(ts * packet.time_base)
            dur = float(packet.duration * packet.time_base) if packet.duration else 0.0
            dur = dur or fallback.get(packet.stream.type, 0.0)
            first[idx] = min(first.get(idx, math.inf), t0)
            last[idx] = max(last.get(idx, -math.inf), t0 + dur)
            count[idx] = count.get(idx, 0) + 1
            if idx not in decoded:
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as err:
                    decode_error = _msg(err)
                    frames = []
                if frames:
                    decoded[idx] = frames[0]
    except (av.error.FFmpegError, ValueError) as err:
        demux_error = _msg(err)
    if demux_error:
        raise MediaError(
            Unusable.TRUNCATED, f"read error (truncated or corrupt): {demux_error}", path
        )
    for stream in chosen:
        if count.get(stream.index) and stream.index not in decoded:
            try:  # flush decoders that hold frames back
                frames = stream.codec_context.decode(None)
            except av.error.FFmpegError as err:
                decode_error, frames = _msg(err), []
            if not frames:
                raise MediaError(
                    Unusable.UNDECODABLE,
                    f"{stream.type} stream cannot be decoded: {decode_error or 'no frame'}",
                    path,
                )
            decoded[stream.index] = frames[0]
    for idx, frame in decoded.items():
        # The first decoded frame is the true start (edit lists, encoder priming, B-frames).
        if frame.pts is not None and frame.time_base is not None:
            first[idx] = float(frame.pts * frame.time_base)
    rotation = 0
    if vstream is not None and vstream.index in decoded:
        rotation = cast(av.VideoFrame, decoded[vstream.index]).rotation % 360

    video = audio = None
    if vstream is not None and count.get(vstream.index):
        tag = vstream.metadata.get("rotate")
        if rotation == 0 and tag and tag.lstrip("-").isdigit():
            rotation = (-int(tag)) % 360  # legacy tag: clockwise degrees
        sar = vstream.sample_aspect_ratio
        video = VideoInfo(
            index=vstream.index,
            codec=vstream.codec_context.name,
            width=vstream.width,
            height=vstream.height,
            sar=float(sar) if sar else 1.0,
            avg_fps=_rate(vstream.average_rate),
            real_fps=_rate(vstream.base_rate),
            n_frames=count[vstream.index],
            rotation=int(rotation),
            start_s=first[vstream.index],
            end_s=last[vstream.index],
        )
    if astream is not None and count.get(astream.index):
        audio = AudioInfo(
            index=astream.index,
            codec=astream.codec_context.name,
            sample_rate=astream.codec_context.sample_rate,
            channels=astream.codec_context.channels,
            start_s=first[astream.index],
            end_s=last[astream.index],
        )
    _check_complete(
        path, header, cstart, [s for s in (vstream, astream) if s is not None], first, last
    )
    return MediaInfo(
        path=str(path),
        format_name=container.format.name,
        size_bytes=size,
        header_duration_s=header,
        start_s=cstart,
        video=video,
        audio=audio,
    )


def _rate(rate) -> float | None:
    return float(rate) if rate else None


def _fallback_durations(vstream) -> dict[str, float]:
    """Frame duration to assume for video packets that carry none (some AVI/FLV muxers)."""
    if vstream is None:
        return {}
    rate = _rate(vstream.average_rate) or _rate(vstream.base_rate) or 25.0
    return {"video": 1.0 / rate}


def _check_complete(path, header, cstart, streams, first, last) -> None:
    """Raise TRUNCATED when the packets end well before the duration the header announces."""
    for stream in streams:
        idx = stream.index
        if idx not in last:
            continue
        if stream.duration and stream.time_base:
            start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            expected = start + float(stream.duration * stream.time_base)
        elif header:
            expected = (cstart or 0.0) + header
            if any(last.get(s.index, 0.0) >= expected - _tolerance(header) for s in streams):
                continue  # the container's duration belongs to the longest stream
        else:
            continue
        if last[idx] < expected - _tolerance(expected - first[idx]):
            raise MediaError(
                Unusable.TRUNCATED,
                f"{stream.type} data ends at {last[idx]:.2f} s but the header announces "
                f"{expected:.2f} s (truncated file)",
                path,
            )


def _tolerance(duration: float) -> float:
    return max(0.5, 0.05 * duration)

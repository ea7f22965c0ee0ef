"""One fixed time window per clip, shared by both modalities, and per-clip feature arrays.

`clip_features` (one clip) and `clips_features` (a batch, one encoder forward) are the functions
that turn (audio, aligned faces) into the cached arrays; the cache stage and `aver predict` both
call them. A clip is first cut (`cut_clip`: the window of waveform and face frames), then
featurised: log-mel/MFCC frames or a pretrained speech encoder's hidden states, and face crops
or a face encoder's per-frame embeddings (`aver.encoders`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aver.config import CacheConfig
from aver.encoders import AUDIO_ENCODERS, FACE_ENCODERS, AudioEncoderSpec
from aver.features.audio import AudioSpec, audio_features, load_wav, resample
from aver.features.video import video_window

if TYPE_CHECKING:
    from aver.encoders.loading import Encoders

ARRAYS = ("audio", "audio_mask", "audio_times", "video", "video_mask", "video_times")
EMBEDDING_DTYPE = "float16"


@dataclass(frozen=True)
class WindowSpec:
    """Fixed per-clip window: its length and the frames and arrays it yields in each modality.

    `encoder` (a pretrained audio encoder) replaces the log-mel/MFCC frames with the hidden
    states of `layers`; `face_dim` (a face encoder's embedding size) replaces face crops.
    """

    window_s: float
    crop: str
    audio: AudioSpec
    video_fps: float
    face_size: int
    encoder: AudioEncoderSpec | None = None
    layers: tuple[int, ...] = ()
    face_dim: int | None = None

    @classmethod
    def from_config(
        cls, cfg: CacheConfig, sample_rate: int, *, face_dim: int | None = None
    ) -> WindowSpec:
        """The window of `cfg`; `face_dim` is needed only for a face encoder whose size the
        registry does not know (torchscript: read it from the loaded encoder)."""
        encoder = AUDIO_ENCODERS.get(cfg.audio_encoder)
        if cfg.pretrained_face:
            face_dim = face_dim or FACE_ENCODERS[cfg.face_encoder].dim
            if face_dim is None:
                raise ValueError(f"face encoder {cfg.face_encoder}: pass face_dim (load it)")
        else:
            face_dim = None
        return cls(
            cfg.window_s, cfg.crop, AudioSpec.from_config(cfg, sample_rate), cfg.video_fps,
            cfg.face_size, encoder, tuple(cfg.kept_layers), face_dim,
        )  # fmt: skip

    @property
    def sample_rate(self) -> int:
        """The rate the window's waveform is cut at (a pretrained encoder's own rate)."""
        return self.encoder.sample_rate if self.encoder else self.audio.sample_rate

    @property
    def n_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    @property
    def audio_frames(self) -> int:
        if self.encoder:
            return self.encoder.n_frames(self.n_samples)
        return self.audio.n_frames(self.n_samples)

    @property
    def video_frames(self) -> int:
        return max(1, round(self.window_s * self.video_fps))

    def frame_times(self, n_frames: int, start_s: float) -> np.ndarray:
        """Timestamps of the audio frames (seconds on the input's time axis)."""
        if self.encoder:
            return self.encoder.frame_times(n_frames, start_s)
        return self.audio.frame_times(n_frames, start_s)

    def shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per-clip shape and dtype of each cached array."""
        ta, tv, s = self.audio_frames, self.video_frames, self.face_size
        audio: tuple[tuple[int, ...], str]
        video: tuple[tuple[int, ...], str]
        if self.encoder:
            audio = ((ta, len(self.layers), self.encoder.dim), EMBEDDING_DTYPE)
        else:
            audio = ((ta, self.audio.n_bins), "float32")
        if self.face_dim:
            video = ((tv, self.face_dim), EMBEDDING_DTYPE)
        else:
            video = ((tv, s, s, 3), "uint8")
        return {
            "audio": audio,
            "audio_mask": ((ta,), "bool"),
            "audio_times": ((ta,), "float32"),
            "video": video,
            "video_mask": ((tv,), "bool"),
            "video_times": ((tv,), "float32"),
        }


def window_start(duration_s: float, window_s: float, crop: str, sample_rate: int) -> int:
    """First sample of the window: centred on the clip or at its start (0 when shorter)."""
    if crop == "center" and duration_s > window_s:
        return round((duration_s - window_s) / 2 * sample_rate)
    return 0


@dataclass
class ClipWindow:
    """One clip cut to the window: waveform segment (zero padded) and face frames on the grid."""

    segment: np.ndarray  # (n_samples,) float32 at spec.sample_rate
    n_real: int  # samples of the segment that are audio (the rest is padding)
    start_s: float
    duration_s: float
    video: np.ndarray  # (Tv, S, S, 3) uint8: cache-size crops, or the aligned size (encoder)
    video_mask: np.ndarray
    video_times: np.ndarray
    offset_s: float = 0.0  # added to the timestamps (a window cut from a shifted clip)


def cut_clip(
    audio: str | Path | np.ndarray,
    faces: Mapping[str, np.ndarray],
    spec: WindowSpec,
    *,
    sample_rate: int | None = None,
) -> ClipWindow:
    """The window [t0, t0 + window_s) of a WAV path (or mono waveform at `sample_rate`) and of
    its faces (`frames` (T, S, S, 3) uint8, `times` (T,) seconds on the audio's clock)."""
    if isinstance(audio, (str, Path)):
        wave, sr = load_wav(audio)
    else:
        if sample_rate is None:
            raise ValueError("sample_rate is required with a waveform")
        wave, sr = np.asarray(audio, dtype=np.float32), sample_rate
    rate = spec.sample_rate
    wave = resample(wave, sr, rate)
    duration = len(wave) / rate
    start = window_start(duration, spec.window_s, spec.crop, rate)
    start_s = start / rate
    seg = np.zeros(spec.n_samples, np.float32)
    piece = wave[start : start + spec.n_samples]
    seg[: len(piece)] = piece
    # a face encoder gets the aligned frames at their own size (it resizes to its input)
    size = int(np.asarray(faces["frames"]).shape[1]) if spec.face_dim else spec.face_size
    video, v_mask, v_times = video_window(faces, start_s, spec.video_frames, spec.video_fps, size)
    return ClipWindow(seg, len(piece), start_s, duration, video, v_mask, v_times)


def clips_features(
    windows: Sequence[ClipWindow], spec: WindowSpec, encoders: Encoders | None = None
) -> list[dict[str, np.ndarray]]:
    """The cached arrays of cut clips; each pretrained encoder runs once over the batch."""
    if not windows:
        return []
    n = spec.audio_frames
    if spec.encoder:
        if encoders is None or encoders.audio is None:
            raise ValueError(f"audio encoder {spec.encoder.name} is not loaded")
        waves = np.stack([w.segment for w in windows])
        lengths = np.asarray([max(w.n_real, 1) for w in windows], np.int64)
        audio = list(encoders.audio.encode(waves, lengths))
    else:
        audio = [audio_features(w.segment, spec.audio) for w in windows]
    videos = [w.video for w in windows]
    if spec.face_dim:
        if encoders is None or encoders.face is None:
            raise ValueError("the face encoder is not loaded")
        videos = _embed_faces(windows, spec.face_dim, encoders)
    out = []
    for w, feats, video in zip(windows, audio, videos):
        times = spec.frame_times(n, w.start_s)
        arrays = {
            "audio": feats,
            "audio_mask": times <= w.duration_s,
            "audio_times": times,
            "video": video,
            "video_mask": w.video_mask,
            "video_times": w.video_times,
        }
        if w.offset_s:
            for key in ("audio_times", "video_times"):
                arrays[key] = (arrays[key].astype(np.float64) + w.offset_s).astype(np.float32)
        out.append(arrays)
    return out


def shift_faces(faces: Mapping[str, np.ndarray], start_s: float) -> dict[str, np.ndarray]:
    """Face arrays with times moved so that `start_s` becomes 0 (frames are not copied)."""
    return {
        "frames": faces["frames"],
        "times": (np.asarray(faces["times"], np.float64) - start_s).astype(np.float32),
    }


def cut_windows(
    segments: Sequence[tuple[float, np.ndarray]],
    sample_rate: int,
    faces: Mapping[str, np.ndarray],
    spec: WindowSpec,
) -> list[ClipWindow]:
    """Windows of one clip, each given as (start_s, its waveform from start_s on at
    `sample_rate`), with `faces` times on the clip's axis: each is cut at its start and its
    timestamps put back on the clip's axis. The cache stage and `aver predict` cut the windows
    of `aver.windows` this way, so both see the same arrays for the same window."""
    at_start = replace(spec, crop="start")
    out = []
    for start_s, wave in segments:
        cut = cut_clip(wave, shift_faces(faces, start_s), at_start, sample_rate=sample_rate)
        cut.offset_s = float(start_s)
        out.append(cut)
    return out


def windows_arrays(
    segments: Sequence[tuple[float, np.ndarray]],
    sample_rate: int,
    faces: Mapping[str, np.ndarray],
    spec: WindowSpec,
    encoders: Encoders | None = None,
) -> list[dict[str, np.ndarray]]:
    """The cached arrays of the windows `cut_windows` cuts (encoders run once over them)."""
    return clips_features(cut_windows(segments, sample_rate, faces, spec), spec, encoders)


def clip_segments(
    wave: np.ndarray, sample_rate: int, starts: Sequence[float] | np.ndarray
) -> list[tuple[float, np.ndarray]]:
    """(start rounded to a sample, the waveform from there on) per window start."""
    firsts = [round(float(s) * sample_rate) for s in starts]
    return [(f / sample_rate, wave[f:]) for f in firsts]


def _embed_faces(windows: Sequence[ClipWindow], dim: int, encoders: Encoders) -> list[np.ndarray]:
    """(Tv, dim) float16 per clip: the face encoder on the real frames of all clips at once."""
    assert encoders.face is not None
    real = [w.video[w.video_mask] for w in windows]
    counts = [len(r) for r in real]
    emb = encoders.face.encode(np.concatenate(real)) if sum(counts) else np.zeros((0, dim))
    out, at = [], 0
    for w, k in zip(windows, counts):
        v = np.zeros((len(w.video_mask), dim), EMBEDDING_DTYPE)
        v[w.video_mask] = emb[at : at + k]
        out.append(v)
        at += k
    return out


def clip_features(
    audio: str | Path | np.ndarray,
    faces: Mapping[str, np.ndarray],
    cfg: CacheConfig,
    *,
    sample_rate: int | None = None,
    target_rate: int = 16000,
    encoders: Encoders | None = None,
) -> dict[str, np.ndarray]:
    """Per-clip cached arrays from a WAV path (or mono waveform at `sample_rate`) and faces.

    The window [t0, t0 + cache.window_s) is cut once and applied to both modalities; positions
    past the end of the clip (or of the face track) are padding with mask False. Timestamps
    are seconds on the input's time axis. `target_rate` is the rate log-mel/MFCC are computed
    at (a pretrained audio encoder uses its own); `encoders` are needed for pretrained ones.
    """
    face_dim = encoders.face_dim if encoders is not None and encoders.face is not None else None
    spec = WindowSpec.from_config(cfg, target_rate, face_dim=face_dim)
    return clips_features([cut_clip(audio, faces, spec, sample_rate=sample_rate)], spec, encoders)[
        0
    ]

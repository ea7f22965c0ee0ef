"""One fixed time window per clip, shared by both modalities, and per-clip feature arrays.

`clip_features` is the single function that turns (audio, aligned faces) into the cached arrays;
the cache stage and `aver predict` both call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aver.config import CacheConfig
from aver.features.audio import AudioSpec, audio_features, load_wav, resample
from aver.features.video import video_window

ARRAYS = ("audio", "audio_mask", "audio_times", "video", "video_mask", "video_times")


@dataclass(frozen=True)
class WindowSpec:
    """Fixed per-clip window: its length and the frame counts it yields in each modality."""

    window_s: float
    crop: str
    audio: AudioSpec
    video_fps: float
    face_size: int

    @classmethod
    def from_config(cls, cfg: CacheConfig, sample_rate: int) -> WindowSpec:
        return cls(
            cfg.window_s, cfg.crop, AudioSpec.from_config(cfg, sample_rate), cfg.video_fps,
            cfg.face_size,
        )  # fmt: skip

    @property
    def n_samples(self) -> int:
        return round(self.window_s * self.audio.sample_rate)

    @property
    def audio_frames(self) -> int:
        return self.audio.n_frames(self.n_samples)

    @property
    def video_frames(self) -> int:
        return max(1, round(self.window_s * self.video_fps))

    def shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per-clip shape and dtype of each cached array."""
        ta, tv, s = self.audio_frames, self.video_frames, self.face_size
        return {
            "audio": ((ta, self.audio.n_bins), "float32"),
            "audio_mask": ((ta,), "bool"),
            "audio_times": ((ta,), "float32"),
            "video": ((tv, s, s, 3), "uint8"),
            "video_mask": ((tv,), "bool"),
            "video_times": ((tv,), "float32"),
        }


def window_start(duration_s: float, window_s: float, crop: str, sample_rate: int) -> int:
    """First sample of the window: centred on the clip or at its start (0 when shorter)."""
    if crop == "center" and duration_s > window_s:
        return round((duration_s - window_s) / 2 * sample_rate)
    return 0


def clip_features(
    audio: str | Path | np.ndarray,
    faces: Mapping[str, np.ndarray],
    cfg: CacheConfig,
    *,
    sample_rate: int | None = None,
    target_rate: int = 16000,
) -> dict[str, np.ndarray]:
    """Per-clip cached arrays from a WAV path (or mono waveform at `sample_rate`) and faces.

    `faces` holds `frames` (T, S, S, 3) uint8 and `times` (T,) seconds on the same clock as the
    audio's first sample. The window [t0, t0 + cache.window_s) is cut once and applied to both
    modalities; positions past the end of the clip (or of the face track) are padding with mask
    False. Timestamps are seconds on the input's time axis.
    """
    if isinstance(audio, (str, Path)):
        wave, sr = load_wav(audio)
    else:
        if sample_rate is None:
            raise ValueError("sample_rate is required with a waveform")
        wave, sr = np.asarray(audio, dtype=np.float32), sample_rate
    wave = resample(wave, sr, target_rate)
    spec = WindowSpec.from_config(cfg, target_rate)
    duration = len(wave) / target_rate
    start = window_start(duration, spec.window_s, spec.crop, target_rate)
    start_s = start / target_rate

    seg = np.zeros(spec.n_samples, np.float32)
    piece = wave[start : start + spec.n_samples]
    seg[: len(piece)] = piece
    feats = audio_features(seg, spec.audio)
    a_times = spec.audio.frame_times(len(feats), start_s)
    a_mask = a_times <= duration

    video, v_mask, v_times = video_window(
        faces, start_s, spec.video_frames, spec.video_fps, spec.face_size
    )
    return {
        "audio": feats,
        "audio_mask": a_mask,
        "audio_times": a_times,
        "video": video,
        "video_mask": v_mask,
        "video_times": v_times,
    }

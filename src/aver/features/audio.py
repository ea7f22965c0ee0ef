"""Audio features (log-mel or MFCC, torchaudio) with one timestamp per frame.

Frames are computed without centre padding: frame i covers samples [i*hop, i*hop + n_fft) of the
input and its timestamp is the centre of that span, `(i*hop + n_fft/2) / sr` seconds after the
input's first sample (torch.stft centres the `win_length` window inside `n_fft`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from aver.config import CacheConfig
from aver.errors import DataError

LOG_EPS = 1e-6


@dataclass(frozen=True)
class AudioSpec:
    """Frame geometry and feature kind, fixed by CacheConfig and the sample rate."""

    sample_rate: int
    feature: str
    n_bins: int
    n_mels: int
    win_length: int
    hop_length: int
    n_fft: int

    @classmethod
    def from_config(cls, cfg: CacheConfig, sample_rate: int) -> AudioSpec:
        win = round(cfg.win_ms * sample_rate / 1000)
        hop = round(cfg.hop_ms * sample_rate / 1000)
        if win < 2 or hop < 1:
            raise ValueError(f"cache.win_ms/hop_ms too small for {sample_rate} Hz")
        n_fft = 1 << (win - 1).bit_length()
        n_bins = cfg.n_mels if cfg.audio_encoder == "logmel" else cfg.n_mfcc
        return cls(sample_rate, cfg.audio_encoder, n_bins, cfg.n_mels, win, hop, n_fft)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced from `n_samples` input samples."""
        return 0 if n_samples < self.n_fft else 1 + (n_samples - self.n_fft) // self.hop_length

    def frame_times(self, n_frames: int, start_s: float = 0.0) -> np.ndarray:
        """Centre of each frame's span in seconds, offset by `start_s`."""
        idx = np.arange(n_frames, dtype=np.float64)
        return (start_s + (idx * self.hop_length + self.n_fft / 2) / self.sample_rate).astype(
            np.float32
        )


@functools.lru_cache(maxsize=8)
def _transform(spec: AudioSpec) -> torch.nn.Module:
    mel_kwargs = {
        "n_fft": spec.n_fft,
        "win_length": spec.win_length,
        "hop_length": spec.hop_length,
        "n_mels": spec.n_mels,
        "center": False,
    }
    if spec.feature == "mfcc":
        return torchaudio.transforms.MFCC(
            sample_rate=spec.sample_rate, n_mfcc=spec.n_bins, melkwargs=mel_kwargs
        )
    return torchaudio.transforms.MelSpectrogram(sample_rate=spec.sample_rate, **mel_kwargs)


def audio_features(wave: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """(n_frames, n_bins) float32 log-mel or MFCC of a mono waveform at `spec.sample_rate`."""
    n = spec.n_frames(len(wave))
    if n == 0:
        return np.zeros((0, spec.n_bins), np.float32)
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        feats = _transform(spec)(x)  # (n_bins, n_frames)
        if spec.feature == "logmel":
            feats = torch.log(feats + LOG_EPS)
    out = feats.T.contiguous().numpy().astype(np.float32, copy=False)
    assert out.shape == (n, spec.n_bins), (out.shape, n)
    return out


def load_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV as mono float32 in [-1, 1] (channels averaged) and its sample rate."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as err:
        raise DataError(
            f"cannot read audio ({err})",
            path=path,
            fix="rerun the extract stage (dvc repro extract)",
        ) from None
    return data.mean(axis=1), int(sr)


def resample(wave: np.ndarray, sr: int, target: int) -> np.ndarray:
    """Resample a mono waveform to `target` Hz (no-op when equal)."""
    if sr == target:
        return wave
    with torch.no_grad():
        out = torchaudio.functional.resample(torch.from_numpy(wave), sr, target)
    return out.numpy()

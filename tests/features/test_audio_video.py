"""Audio frame geometry and features; video resampling onto the time grid."""

from __future__ import annotations

import numpy as np
import pytest

from aver.config import CacheConfig
from aver.features.audio import AudioSpec, audio_features
from aver.features.video import nearest_frames, video_window

SR = 16000


def test_frame_geometry_matches_config():
    spec = AudioSpec.from_config(CacheConfig(), SR)
    assert (spec.win_length, spec.hop_length, spec.n_fft, spec.n_bins) == (400, 160, 512, 64)
    assert spec.n_frames(SR * 2) == 197
    times = spec.frame_times(3, start_s=1.0)
    np.testing.assert_allclose(times, [1.016, 1.026, 1.036], atol=1e-6)


@pytest.mark.parametrize("hz", [300.0, 2500.0])
def test_logmel_peak_follows_the_tone(hz: float):
    spec = AudioSpec.from_config(CacheConfig(n_mels=40), SR)
    t = np.arange(SR) / SR
    feats = audio_features(np.sin(2 * np.pi * hz * t).astype(np.float32), spec)
    assert feats.shape == (spec.n_frames(SR), 40) and feats.dtype == np.float32
    peak = int(np.bincount(feats.argmax(axis=1)).argmax())
    # mel bin centres are monotone in frequency: a higher tone peaks in a higher bin
    ref = audio_features(np.sin(2 * np.pi * 1000.0 * t).astype(np.float32), spec)
    ref_peak = int(np.bincount(ref.argmax(axis=1)).argmax())
    assert (peak < ref_peak) == (hz < 1000.0)


def test_mfcc_dims_follow_n_mfcc():
    spec = AudioSpec.from_config(CacheConfig(audio_encoder="mfcc", n_mfcc=10), SR)
    feats = audio_features(np.random.default_rng(0).normal(size=SR).astype(np.float32), spec)
    assert feats.shape == (spec.n_frames(SR), 10) and np.isfinite(feats).all()


def test_nearest_frame_and_gaps():
    src = np.array([0.02, 0.06, 0.10, 0.14, 0.50], np.float32)  # gap after 0.14
    idx, valid = nearest_frames(src, np.array([0.05, 0.11, 0.30, 0.52, 0.80]), fps=25.0)
    assert idx.tolist()[:2] == [1, 2] and idx[3] == 4
    assert valid.tolist() == [True, True, False, True, False]
    # unsorted source times give the same answer
    perm = np.array([4, 2, 0, 3, 1])
    idx2, valid2 = nearest_frames(src[perm], np.array([0.05, 0.11]), fps=25.0)
    assert src[perm][idx2].tolist() == pytest.approx([0.06, 0.10]) and valid2.all()


def test_video_window_resizes_and_keeps_source_times():
    times = ((np.arange(25) + 0.5) / 25).astype(np.float32)
    frames = np.zeros((25, 48, 48, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(25) * 10)[:, None, None]
    video, mask, vt = video_window({"frames": frames, "times": times}, 0.0, 10, 5.0, 16)
    assert video.shape == (10, 16, 16, 3) and video.dtype == np.uint8
    assert mask.tolist() == [True] * 5 + [False] * 5
    src_idx = np.round(vt[:5] * 25 - 0.5).astype(int)
    assert np.all(np.abs(vt[:5] - (np.arange(5) + 0.5) / 5) <= 0.02 + 1e-6)
    assert video[:5, 0, 0, 0].tolist() == (src_idx * 10).tolist()
    assert (video[5:] == 0).all()

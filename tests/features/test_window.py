"""Audio and video frames of a clip share one clock and one window."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from aver.config import CacheConfig
from aver.features import FeatureCache, batch_from_arrays, clip_features, make_loader
from tests.features.conftest import SR, Clip, build_cache, face_times

# (clip_id, duration s, event time s): one clip longer than the window, one shorter, one late
EVENTS = [("ev-a", 3.0, 1.37), ("ev-b", 1.5, 0.83), ("ev-c", 2.6, 1.91)]


def event_clip(clip_id: str, speaker: str, duration: float, t_event: float, fps: float) -> Clip:
    """Quiet noise with a 20 ms 1 kHz burst at t_event; dark faces, bright around t_event."""
    rng = np.random.default_rng(zlib.crc32(clip_id.encode()))
    n = int(duration * SR)
    t = np.arange(n) / SR
    wave = rng.normal(0, 1e-3, n)
    burst = np.abs(t - t_event) <= 0.01
    wave[burst] += 0.8 * np.sin(2 * np.pi * 1000 * t[burst])
    times = face_times(duration)
    frames = np.full((len(times), 32, 32, 3), 20, np.uint8)
    # bright for half an output period either side, so exactly one resampled frame catches it
    frames[np.abs(times - t_event) < 0.5 / fps] = 250
    return Clip(clip_id, speaker, "angry", wave.astype(np.float32), frames, times)


@pytest.mark.parametrize(("video_fps", "crop"), [(5.0, "center"), (25.0, "center"), (5.0, "start")])
def test_audio_and_video_event_times_agree(tmp_path: Path, video_fps: float, crop: str):
    clips = [event_clip(cid, f"s{i}", d, te, video_fps) for i, (cid, d, te) in enumerate(EVENTS)]
    clips += [  # filler speakers so three folds exist
        event_clip(f"fill-{i}", f"t{i}", 1.0, 0.5, video_fps) for i in range(3)
    ]
    out = build_cache(
        tmp_path, clips, window_s=2.0, video_fps=video_fps, crop=crop, n_folds=3, face_size=16
    )
    cache = FeatureCache(out)
    period = 1.0 / video_fps
    for clip_id, duration, t_event in EVENTS:
        arr = cache.read(clip_id)
        start = max(0.0, (duration - 2.0) / 2) if crop == "center" else 0.0
        if not start <= t_event < start + 2.0:
            continue
        energy = np.where(arr["audio_mask"], arr["audio"].mean(axis=1), -np.inf)
        t_audio = float(arr["audio_times"][np.argmax(energy)])
        brightness = np.where(arr["video_mask"], arr["video"].mean(axis=(1, 2, 3)), -1)
        t_video = float(arr["video_times"][np.argmax(brightness)])
        assert abs(t_audio - t_event) <= 0.015, (clip_id, t_audio)
        assert abs(t_video - t_event) <= 0.5 * period + 0.5 / 25 + 1e-4, (clip_id, t_video)
        assert abs(t_audio - t_video) <= period, (clip_id, t_audio, t_video)
        # timestamps are on the extract clock: the window starts at `start`
        assert arr["audio_times"][0] == pytest.approx(start + 256 / SR, abs=1e-4)
        assert arr["video_times"][0] == pytest.approx(start + 0.5 * period, abs=0.5 / 25 + 1e-4)

    # the model batch carries the same timestamps
    fold = int(cache.index.set_index("clip_id").at["ev-a", "fold"])
    for batch in make_loader(cache, fold, "test", 8, train=False):
        if "ev-a" in batch["clip_id"]:
            i = batch["clip_id"].index("ev-a")
            ref = cache.read("ev-a")
            assert np.allclose(batch["audio_times"][i].numpy(), ref["audio_times"])
            assert np.allclose(batch["video_times"][i].numpy(), ref["video_times"])
            break
    else:
        pytest.fail("ev-a not in its own test fold")


def test_short_clip_is_padded_with_masks(tmp_path: Path):
    cfg = CacheConfig(window_s=2.0, video_fps=10.0, face_size=16, crop="center")
    clip = event_clip("short", "s", 1.2, 0.6, 10.0)
    arr = clip_features(
        clip.wave, {"frames": clip.frames, "times": clip.times}, cfg, sample_rate=SR
    )
    assert arr["audio"].shape == (197, 64) and arr["video"].shape == (20, 16, 16, 3)
    real_audio = arr["audio_times"] <= 1.2
    assert np.array_equal(arr["audio_mask"], real_audio)
    assert 100 < arr["audio_mask"].sum() < 125
    assert arr["video_mask"].sum() == 12 and arr["video_mask"][:12].all()
    assert (arr["video"][~arr["video_mask"]] == 0).all()
    assert np.all(np.diff(arr["video_times"]) > 0) and np.all(np.diff(arr["audio_times"]) > 0)
    # padding is zero in the batch too, and the batch follows the contract's layout
    from aver.features.stats import FoldStats

    stats = FoldStats(np.zeros(64, np.float32), np.ones(64, np.float32), np.zeros(3), np.ones(3), 1)
    batch = batch_from_arrays([arr], stats)
    assert batch["video"].shape == (1, 20, 3, 16, 16)
    assert (batch["audio"][0][~batch["audio_mask"][0]] == 0).all()


def test_waveform_at_other_rate_is_resampled():
    cfg = CacheConfig(window_s=1.0, video_fps=5.0, face_size=16)
    clip = event_clip("rs", "s", 1.5, 0.7, 5.0)
    faces = {"frames": clip.frames, "times": clip.times}
    at16 = clip_features(clip.wave, faces, cfg, sample_rate=SR)
    wave8 = clip.wave[::2].copy()
    at8 = clip_features(wave8, faces, cfg, sample_rate=8000)
    assert at8["audio"].shape == at16["audio"].shape
    assert np.argmax(at8["audio"].mean(1)) == pytest.approx(np.argmax(at16["audio"].mean(1)), abs=1)

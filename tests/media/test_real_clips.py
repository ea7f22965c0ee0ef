"""Extract on the real clips: CREMA-D VideoFlash (VP6 + MP3 in flv) and RAVDESS 1280x720 mp4.

The sync check decodes each source's audio independently (PyAV, not the ffmpeg CLI that extract
uses) and finds, by cross-correlation, where the extracted WAV sits on it: t = 0 of the output
is the source's first video frame, so the lag must equal the video stream's start minus the
audio stream's (27 ms for the CREMA-D flv files, 0 for RAVDESS).
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf

from aver.config import ExtractConfig
from aver.media.probe import probe
from tests.support.real_clips import clip_ids, real_clips

CFG = ExtractConfig()
SR = CFG.sample_rate
MAX_LAG_S = 0.2


def _reference_audio(src: str) -> tuple[np.ndarray, float]:
    """Mono float samples at SR from the audio stream's own start, and that start (s)."""
    with av.open(src) as container:
        stream = container.streams.audio[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks), start


def _lag_s(reference: np.ndarray, extracted: np.ndarray) -> float:
    """Offset (s) of `extracted` within `reference` by normalised cross-correlation."""
    seg = extracted[int(0.3 * SR) : int(1.3 * SR)]  # one second of speech, away from the ends
    best, best_lag = -np.inf, 0
    for lag in range(-int(MAX_LAG_S * SR), int(MAX_LAG_S * SR) + 1):
        lo = int(0.3 * SR) + lag
        ref = reference[lo : lo + len(seg)]
        if lo < 0 or len(ref) < len(seg):
            continue
        score = float(np.dot(ref, seg) / (np.linalg.norm(ref) * np.linalg.norm(seg) + 1e-12))
        if score > best:
            best, best_lag = score, lag
    assert best > 0.9, f"the extracted audio does not match the source's (best r={best:.2f})"
    return best_lag / SR


@pytest.mark.parametrize("clip_id", clip_ids())
def test_real_clip_extracts_on_one_time_axis(real_extracted, clip_id):
    clip = real_clips().set_index("clip_id").loc[clip_id]
    row, audio, video = real_extracted[clip_id]
    info = probe(clip.file)
    assert info.video is not None and info.audio is not None
    # the whole clip is kept: both streams on the video's axis, cut to the shorter one
    shorter = min(info.video.duration_s, info.audio.end_s - info.video.start_s)
    assert row["duration_s"] == pytest.approx(shorter, abs=2.0 / CFG.fps)
    assert sf.info(audio).frames == round(row["n_frames"] * SR / CFG.fps)
    with av.open(str(video)) as c:
        assert c.streams.video[0].frames == row["n_frames"]
    assert max(row["width"], row["height"]) == CFG.max_side
    width, height = info.video.display_size
    assert row["width"] / row["height"] == pytest.approx(width / height, rel=0.02)
    reference, a_start = _reference_audio(clip.file)
    samples, _ = sf.read(audio, dtype="float32")
    expected = info.video.start_s - a_start
    assert _lag_s(reference, samples) == pytest.approx(expected, abs=0.002)

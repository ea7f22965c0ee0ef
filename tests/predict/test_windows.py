"""aver.predict.windows: streamed window scoring gives the in-memory path's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from aver.features.audio import load_wav
from aver.inference import class_probabilities, load_trained_model, window_arrays, window_starts
from aver.predict.modalities import InputPlan
from aver.predict.model import input_settings
from aver.predict.steps import Steps
from aver.predict.windows import FaceBuffer, Sources, WavReader, score_windows
from tests.support.model_files import write_model_file

SR, FPS = 16000, 25.0
DURATION = 34.5  # two batches of windows


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    trained = load_trained_model(write_model_file(tmp / "m.pt", modality_dropout=0.3))
    return trained, input_settings(trained, "no-params.yaml")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Noise getting louder each second (a WAV) and faces whose pixels hold their index."""
    rng = np.random.default_rng(0)
    t = np.arange(round(DURATION * SR)) / SR
    wave = (rng.standard_normal(len(t)) * 0.02 * (1 + np.floor(t) % 7)).astype(np.float32)
    wav = tmp_path_factory.mktemp("clip") / "audio.wav"
    sf.write(wav, wave, SR, subtype="PCM_16")
    n = round(DURATION * FPS)
    frames = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    times = ((np.arange(n) + 0.5) / FPS).astype(np.float32)
    detected = ~((times >= 10.0) & (times < 16.0))  # no face from 10 s to 16 s
    return wav, {"frames": frames, "times": times}, detected


def _stream(faces, detected):
    return ((float(t), f, bool(d)) for t, f, d in zip(faces["times"], faces["frames"], detected))


def test_wav_reader_reads_the_samples_load_wav_reads(clip):
    wav, _, _ = clip
    whole, sr = load_wav(wav)
    reader = WavReader(wav)
    start, piece = reader.segment(3.00002, 2.5)
    assert reader.sample_rate == sr == SR and start == 3.0
    np.testing.assert_array_equal(piece, whole[3 * SR : round(5.5 * SR)])
    _, tail = reader.segment(DURATION - 1.0, 2.5)  # up to the end
    assert len(tail) == SR


def test_face_buffer_holds_only_what_is_asked(clip):
    _, faces, detected = clip
    buffer = FaceBuffer(_stream(faces, detected), size=16)
    buffer.fill_until(3.0)
    assert 3.0 < buffer.times[-1] < 3.1
    buffer.drop_before(2.0)
    got = buffer.faces(2.0, 3.0)
    np.testing.assert_array_equal(got["frames"], faces["frames"][50:75])
    buffer.fill_until(11.0)
    assert buffer.detection_rate(9.0, 11.0) == pytest.approx(0.5)
    assert buffer.faces(50.0, 51.0)["frames"].shape == (0, 16, 16, 3)


@pytest.mark.parametrize("faceless", [False, True])
def test_streamed_windows_equal_the_in_memory_windows(model, clip, faceless):
    """Every window's probabilities equal window_arrays over the whole clip held in memory; a
    window without a face is scored from audio (video zero, mask all False: finite numbers) or
    left unscored, by the plan."""
    trained, settings = model
    wav, faces, detected = clip
    starts = window_starts(DURATION, settings.cache.window_s)
    plan = InputPlan(audio=True, video=True, faceless_windows=faceless)
    steps = Steps()
    got = score_windows(
        starts, Sources(wav, _stream(faces, detected), DURATION), trained, settings, plan, steps
    )
    assert [w.start for w in got] == list(starts) and got[-1].end == DURATION
    assert {"align", "features", "network"} <= set(steps.seconds)
    wave, _ = load_wav(wav)
    for w in got:
        arrays = window_arrays(wave, SR, faces, w.start, settings.cache, settings.sample_rate)
        in_window = (faces["times"] >= w.start) & (faces["times"] < w.start + 2.0)
        has_face = detected[in_window].mean() >= settings.align.min_detection_rate
        if not has_face and not faceless:
            assert w.probs is None and w.modalities == (), w.start
            continue
        if not has_face:
            arrays["video"] = np.zeros_like(arrays["video"])
            arrays["video_mask"] = np.zeros_like(arrays["video_mask"])
        expected = class_probabilities(trained.model, [arrays], settings.stats)[0]
        assert w.modalities == (("audio", "video") if has_face else ("audio",)), w.start
        assert np.isfinite(w.probs).all()
        np.testing.assert_allclose(w.probs, expected, atol=1e-5, err_msg=str(w.start))
    assert sum(w.modalities == ("audio",) for w in got) == (5 if faceless else 0)  # starts 10..14 s


def test_without_a_sound_track_windows_are_scored_from_the_face(model, clip):
    trained, settings = model
    _, faces, detected = clip
    starts = window_starts(6.0, settings.cache.window_s)
    plan = InputPlan(audio=False, video=True, faceless_windows=False)
    got = score_windows(
        starts, Sources(None, _stream(faces, detected), 6.0), trained, settings, plan, Steps()
    )
    assert [w.modalities for w in got] == [("video",)] * 5
    silent = window_arrays(np.zeros(SR * 6, np.float32), SR, faces, 1.0, settings.cache, SR)
    silent["audio"] = np.zeros_like(silent["audio"])
    silent["audio_mask"] = np.zeros_like(silent["audio_mask"])
    expected = class_probabilities(trained.model, [silent], settings.stats)[0]
    assert np.isfinite(got[1].probs).all()
    np.testing.assert_allclose(got[1].probs, expected, atol=1e-5)

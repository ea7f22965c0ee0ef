"""predict_video / `aver predict` on real H.264 videos: the whole clip, faceless stretches,
no face, no sound track (random-weight models: the numbers are checked, not the classes)."""

from __future__ import annotations

import argparse
import inspect
import json

import numpy as np
import pytest

from aver.errors import DataError
from aver.inference import load_trained_model, window_starts
from aver.media.extract import extract_clip
from aver.predict import input_settings, main, predict_video
from tests.support.model_files import (
    concat,
    demo_clips,
    pattern_clip,
    strip_audio,
    write_model_file,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EMOTIONS = ["neutral", "happy", "sad", "angry"]
EXTRACT_MISSING_OK = "missing_ok" in inspect.signature(extract_clip).parameters


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("media")
    clips = demo_clips(tmp, duration_s=3.0)
    blank = pattern_clip(tmp / "blank.mp4", 4.0)
    return {
        "four": concat([clips[e] for e in EMOTIONS], tmp / "four.mp4"),
        "stretch": concat([clips["happy"], blank, clips["sad"]], tmp / "stretch.mp4"),
        "blank": blank,
        "silent": strip_audio(clips["happy"], tmp / "silent.mp4"),
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    return {
        "msan": write_model_file(tmp / "msan.pt"),
        "dropout": write_model_file(tmp / "dropout.pt", modality_dropout=0.3),
    }


def _predict(model, video, **kw):
    trained = load_trained_model(model)
    return predict_video(video, trained, input_settings(trained, "no-params.yaml"), **kw)


def test_four_emotions_headline_is_the_mean_of_every_window(media, models, tmp_path, capsys):
    """`aver predict --json --timeline` on neutral -> happy -> sad -> angry (12 s): one window
    per second over the whole clip, the headline their mean, the timeline drawn."""
    png = tmp_path / "timeline.png"
    args = argparse.Namespace(
        video=str(media["four"]), model=str(models["msan"]), json=True, timeline=str(png),
        params="no-params.yaml", profile=True,
    )  # fmt: skip
    main(args)
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["aggregate"] == "mean of window probabilities"
    assert doc["modalities"] == ["audio", "video"] and doc["notes"] == []
    assert doc["duration_s"] == pytest.approx(12.0, abs=0.1)
    windows = doc["windows"]
    starts = window_starts(doc["duration_s"], 2.0)  # every 1 s, the last one ends at the end
    assert len(starts) == 11
    assert [w["start"] for w in windows] == pytest.approx(list(starts), abs=1e-3)
    assert windows[-1]["end"] == pytest.approx(doc["duration_s"])
    assert all(w["modalities"] == ["audio", "video"] for w in windows)
    probs = np.array([list(w["probabilities"].values()) for w in windows])
    np.testing.assert_allclose(list(doc["probabilities"].values()), probs.mean(axis=0), atol=1e-9)
    assert doc["prediction"] == max(doc["probabilities"], key=doc["probabilities"].get)
    assert [row["t"] for row in doc["timeline"]] == pytest.approx(list(starts + 1.0), abs=1e-3)
    assert png.read_bytes()[:8] == PNG_MAGIC
    profile = json.loads(out.err.split("[predict] profile: ")[1].splitlines()[0])
    assert {"model load", "extract", "detect + track", "align", "features", "network"} <= set(
        profile
    )


def test_a_faceless_stretch(media, models):
    """happy (3 s), a test pattern (4 s), sad (3 s): the windows inside the pattern have no face;
    the fusion model without modality dropout leaves them out, with dropout it scores them from
    the voice; both say so."""
    strict = _predict(models["msan"], media["stretch"])
    faceless = [w for w in strict.windows if w.probs is None]
    # the pattern runs from 3 s to 7 s: windows inside it, and those mostly in it, are faceless
    assert {3.0, 4.0, 5.0} <= {w.start for w in faceless}
    assert all(w.start >= 2.0 and w.end <= 8.0 for w in faceless)
    assert any("not scored" in n for n in strict.notes)
    np.testing.assert_allclose(
        strict.probs, np.mean([w.probs for w in strict.windows if w.probs is not None], axis=0)
    )
    lenient = _predict(models["dropout"], media["stretch"])
    assert all(w.probs is not None for w in lenient.windows)
    audio_only = [w.start for w in lenient.windows if w.modalities == ("audio",)]
    assert audio_only == [w.start for w in faceless]
    assert any("scored from the voice alone" in n for n in lenient.notes)
    assert all(np.isfinite(w.probs).all() for w in lenient.windows)


def test_no_face_at_all(media, models):
    with pytest.raises(DataError, match="no face found: a face was detected in 0% of"):
        _predict(models["msan"], media["blank"])
    pred = _predict(models["dropout"], media["blank"])
    assert pred.modalities == ("audio",) and pred.detection_rate == 0.0
    assert all(w.modalities == ("audio",) for w in pred.windows)
    assert any("no face found" in n and "voice alone" in n for n in pred.notes)


def test_no_sound_track_is_refused_by_a_model_that_needs_it(media, models):
    with pytest.raises(DataError) as err:
        _predict(models["msan"], media["silent"], model_name="m.pt")
    text = str(err.value)
    assert "no audio track: model m.pt (msan) needs the voice" in text
    assert "retrain with train.modality_dropout > 0 or use video_only" in text


@pytest.mark.skipif(not EXTRACT_MISSING_OK, reason="extract_clip(missing_ok=) not on main yet")
def test_no_sound_track_scored_from_the_face(media, models):
    pred = _predict(models["dropout"], media["silent"])
    assert pred.modalities == ("video",)
    assert all(w.modalities == ("video",) for w in pred.windows)
    assert pred.notes == ["no audio track: scored from the face alone"]
    assert np.isfinite(pred.probs).all()


@pytest.mark.skipif(not EXTRACT_MISSING_OK, reason="extract_clip(missing_ok=) not on main yet")
def test_an_audio_file(media, models, tmp_path):
    """A WAV (no video stream): an audio model scores it, a fusion model trained with modality
    dropout scores it from the voice, one without refuses it by name."""
    import soundfile as sf

    from aver.config import ExtractConfig
    from aver.features.audio import load_wav
    from aver.media.extract import extract_clip

    row = extract_clip(media["four"], tmp_path / "a.wav", tmp_path / "v.mp4", ExtractConfig())
    wave, sr = load_wav(row["audio"])
    wav = tmp_path / "speech.wav"
    sf.write(wav, wave, sr)
    audio_model = write_model_file(tmp_path / "audio.pt", name="audio_only")
    notes = {audio_model: [], models["dropout"]: ["no video stream: scored from the voice alone"]}
    for model, expected in notes.items():
        pred = _predict(model, wav)
        assert pred.modalities == ("audio",) and pred.detection_rate == 0.0
        assert len(pred.windows) == len(window_starts(pred.duration_s, 2.0))
        assert pred.notes == expected
    with pytest.raises(DataError, match=r"no video stream: model m.pt \(msan\) reads faces"):
        _predict(models["msan"], wav, model_name="m.pt")

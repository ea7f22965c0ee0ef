"""aver.predict.modalities: what a model may read when a file lacks audio, video or a face."""

from __future__ import annotations

import pytest

from aver.config import AlignConfig
from aver.errors import DataError
from aver.inference import load_trained_model
from aver.predict.modalities import after_tracking, plan_inputs
from tests.support.model_files import write_model_file


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    made = {
        "msan": write_model_file(tmp / "msan.pt"),
        "msan_dropout": write_model_file(tmp / "msan_d.pt", modality_dropout=0.3),
        "audio_only": write_model_file(tmp / "a.pt", name="audio_only"),
        "video_only": write_model_file(tmp / "v.pt", name="video_only"),
    }
    return {k: load_trained_model(p).card for k, p in made.items()}


def _plan(card, audio=True, video=True):
    return plan_inputs(card, has_audio=audio, has_video=video, model_name="m.pt", path="x.mp4")


def test_full_media_reads_what_the_model_reads(cards):
    full = _plan(cards["msan"])
    assert (full.audio, full.video, full.faceless_windows, full.notes) == (True, True, False, ())
    assert _plan(cards["msan_dropout"]).faceless_windows
    audio = _plan(cards["audio_only"])
    assert (audio.audio, audio.video) == (True, False)  # no face pipeline for an audio model
    video = _plan(cards["video_only"])
    assert (video.audio, video.video) == (False, True)


def test_no_audio_track(cards):
    with pytest.raises(DataError) as err:
        _plan(cards["msan"], audio=False)
    text = str(err.value)
    assert "no audio track: model m.pt (msan) needs the voice" in text
    assert "retrain with train.modality_dropout > 0 or use video_only" in text
    plan = _plan(cards["msan_dropout"], audio=False)
    assert (plan.audio, plan.video, plan.extract_missing_ok) == (False, True, True)
    assert plan.notes == ("no audio track: scored from the face alone",)
    assert _plan(cards["video_only"], audio=False).notes == ()  # it never reads audio
    with pytest.raises(DataError, match=r"no audio track: model m.pt \(audio_only\)"):
        _plan(cards["audio_only"], audio=False)


def test_no_video_stream(cards):
    for name in ("msan", "video_only"):
        with pytest.raises(DataError, match=r"no video stream: model m.pt .* reads faces"):
            _plan(cards[name], video=False)
    plan = _plan(cards["msan_dropout"], video=False)
    assert (plan.audio, plan.video) == (True, False)
    assert plan.notes == ("no video stream: scored from the voice alone",)
    assert _plan(cards["audio_only"], video=False).video is False


def test_no_face_found(cards):
    cfg = AlignConfig(min_detection_rate=0.5)
    plan = _plan(cards["msan"])
    assert after_tracking(plan, 0.6, 100, cfg, "x.mp4") is plan
    with pytest.raises(DataError, match="no face found: a face was detected in 20% of 100"):
        after_tracking(plan, 0.2, 100, cfg, "x.mp4")
    audio = after_tracking(_plan(cards["msan_dropout"]), 0.2, 100, cfg, "x.mp4")
    assert (audio.audio, audio.video) == (True, False)
    assert "scored from the voice alone" in audio.notes[-1]
    with pytest.raises(DataError, match="no face found"):
        after_tracking(_plan(cards["video_only"]), 0.0, 100, cfg, "x.mp4")

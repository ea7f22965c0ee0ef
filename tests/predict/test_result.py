"""aver.predict.result: the whole-clip headline (mean of windows), JSON and the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aver.predict.result import (
    AGGREGATE,
    Prediction,
    WindowResult,
    format_table,
    mean_probabilities,
    used_modalities,
)

CLASSES = ["neutral", "happy", "sad", "angry"]


def _windows() -> list[WindowResult]:
    av = ("audio", "video")
    return [
        WindowResult(0.0, 2.0, np.array([0.7, 0.1, 0.1, 0.1]), av),
        WindowResult(1.0, 3.0, np.array([0.1, 0.7, 0.1, 0.1]), ("audio",)),
        WindowResult(2.0, 4.0, None, ()),  # not scored: does not count
        WindowResult(2.5, 4.5, np.array([0.1, 0.1, 0.1, 0.7]), av),
    ]


def test_headline_is_the_mean_of_the_scored_windows():
    probs = mean_probabilities(_windows())
    np.testing.assert_allclose(probs, [0.3, 0.3, 0.1, 0.3])
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert used_modalities(_windows()) == ("audio", "video")
    assert used_modalities(_windows()[1:3]) == ("audio",)


def test_json_carries_every_window_and_the_rule():
    windows = _windows()
    pred = Prediction(
        video="v.mp4", classes=CLASSES, probs=mean_probabilities(windows), detection_rate=0.9,
        duration_s=4.5, model="m.pt", windows=windows, modalities=("audio", "video"),
        window_s=2.0, notes=["1 of 4 windows had no face"],
    )  # fmt: skip
    doc = json.loads(json.dumps(pred.to_json()))
    assert doc["aggregate"] == AGGREGATE == "mean of window probabilities"
    assert doc["modalities"] == ["audio", "video"]
    assert doc["notes"] == ["1 of 4 windows had no face"]
    assert [(w["start"], w["end"]) for w in doc["windows"]] == [
        (0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (2.5, 4.5)
    ]  # fmt: skip
    assert doc["windows"][1]["modalities"] == ["audio"]
    assert doc["windows"][2] == {"start": 2.0, "end": 4.0, "probabilities": None, "modalities": []}
    first = doc["windows"][0]["probabilities"]
    assert first == pytest.approx(dict(zip(CLASSES, [0.7, 0.1, 0.1, 0.1])))
    scored = [w["probabilities"] for w in doc["windows"] if w["probabilities"]]
    for c in CLASSES:
        assert doc["probabilities"][c] == pytest.approx(np.mean([p[c] for p in scored]))
    assert "timeline" not in doc


def test_table_says_the_headline_is_the_whole_clip_mean():
    windows = _windows()
    pred = Prediction(
        video="v.mp4", classes=CLASSES, probs=mean_probabilities(windows), detection_rate=0.9,
        duration_s=4.5, model="m.pt", windows=windows, modalities=("audio", "video"),
        window_s=2.0,
    )  # fmt: skip
    lines = format_table(pred).splitlines()
    assert lines[0] == "video: v.mp4 (4.50 s, face in 90% of frames) from audio + video"
    assert lines[1].endswith("(whole clip: mean of 3 windows of 2 s)")
    assert lines[-1] == "prediction: neutral"  # ties: the first class


def test_table_has_no_face_rate_when_no_face_was_used():
    windows = _windows()
    pred = Prediction(
        video="a.wav", classes=CLASSES, probs=mean_probabilities(windows), detection_rate=0.0,
        duration_s=4.5, model="m.pt", windows=windows, modalities=("audio",), window_s=2.0,
    )  # fmt: skip
    assert format_table(pred).splitlines()[0] == "video: a.wav (4.50 s) from audio"

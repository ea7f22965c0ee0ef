"""The logged pyfunc: a model batch and videos (a path on the server, base64 bytes) through the
same model, and errors as readable MLflow errors. Model: tests/fixtures/model-v1.pt (tiny msan,
random weights); video: one generated demo clip (a real face, voice and H.264/AAC mp4)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from aver.features import batch_from_arrays
from aver.inference import load_trained_model
from aver.tracking.pyfunc import input_example, log_pyfunc
from tests.fixtures.make_model_v1 import fixed_inputs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1 = FIXTURES / "model-v1.pt"


def demo_clip(path: Path, duration_s: float = 2.0) -> Path:
    """One demo clip (speaker 0, happy) written as the download stage writes them."""
    from aver.config import DemoConfig
    from aver.datasets.demo import ClipSpec, render_media, speaker_appearance, write_mp4

    cfg = DemoConfig(duration_s=duration_s)
    frames, audio = render_media(
        ClipSpec(0, "happy", 2, 1, 1), speaker_appearance(cfg.seed, 0, cfg.size), cfg
    )
    write_mp4(path, frames, audio, cfg.fps, cfg.sample_rate)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return demo_clip(tmp_path_factory.mktemp("clip") / "happy.mp4")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """model-v1.pt logged with log_pyfunc in an embedded store: (pyfunc, batch, probs)."""
    root = tmp_path_factory.mktemp("pyfunc")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlruns.db'}")
    try:
        trained = load_trained_model(V1)
        batch = batch_from_arrays(fixed_inputs(), trained.card.fold_stats())
        example = input_example(batch, n=2)
        expected = json.loads((FIXTURES / "model-v1.json").read_text())["probabilities"]
        with mlflow.start_run():
            info = log_pyfunc(V1, example, np.asarray(expected, dtype=np.float32))
        yield mlflow.pyfunc.load_model(info.model_uri), example, np.asarray(expected)
    finally:
        mlflow.set_tracking_uri(None)


def test_a_model_batch_gives_its_probabilities(logged):
    pyfunc, example, expected = logged
    np.testing.assert_allclose(pyfunc.predict(example), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pyfunc.predict(pyfunc.input_example), expected, atol=1e-6)
    # as JSON would carry it (nested lists, float64)
    as_lists = {k: v.tolist() for k, v in example.items()}
    np.testing.assert_allclose(pyfunc.predict(as_lists), expected, atol=1e-6)
    assert pyfunc.metadata.signature is not None


def _check_doc(doc: dict, classes: list[str], name: str) -> None:
    assert doc["video"] == name
    assert list(doc["probabilities"]) == classes
    assert sum(doc["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert doc["prediction"] == max(doc["probabilities"], key=doc["probabilities"].get)
    assert doc["duration_s"] == pytest.approx(2.0, abs=0.05) and doc["detection_rate"] >= 0.5
    assert doc["timeline"] and all(
        sum(v for k, v in row.items() if k != "t") == pytest.approx(1.0, abs=1e-6)
        for row in doc["timeline"]
    )


def test_a_video_by_path_and_as_base64(logged, clip):
    """The same clip by path and as bytes gives the same answer, as DataFrame rows or a dict."""
    pyfunc, _, _ = logged
    classes = load_trained_model(V1).classes
    [by_path] = pyfunc.predict(pd.DataFrame([{"video_path": str(clip)}]))
    _check_doc(by_path, classes, str(clip))
    b64 = base64.b64encode(clip.read_bytes()).decode()
    [by_bytes] = pyfunc.predict({"video_b64": b64, "filename": "happy.mp4"})
    _check_doc(by_bytes, classes, "happy.mp4")
    assert by_bytes["probabilities"] == pytest.approx(by_path["probabilities"], abs=1e-6)
    assert [r["t"] for r in by_bytes["timeline"]] == [r["t"] for r in by_path["timeline"]]


@pytest.mark.parametrize(
    ("request_row", "message"),
    [
        ({"video_b64": "not base64 !!"}, "video_b64 of upload is not valid base64"),
        ({"video_path": "/no/such/clip.mp4"}, "/no/such/clip.mp4: file not found on the server"),
        ({"video_path": "/x.mp4", "video_b64": "AAAA"}, "has both of video_path and video_b64"),
        ({"filename": "a.mp4"}, "neither video_path/video_b64 nor the model batch keys"),
        (
            {"video_b64": base64.b64encode(b"meeting notes").decode(), "filename": "notes.mp4"},
            "notes.mp4: ",
        ),
    ],
)
def test_bad_requests_are_readable_errors(logged, request_row, message):
    pyfunc, _, _ = logged
    with pytest.raises(MlflowException) as info:
        pyfunc.predict(pd.DataFrame([request_row]))
    assert message in info.value.message and "Fix:" in info.value.message
    assert info.value.get_http_status_code() == 400


def test_a_video_without_a_face_names_the_upload(logged, tmp_path):
    from tests.test_predict import _tiny_video

    pyfunc, _, _ = logged
    video = _tiny_video(tmp_path / "pattern.mp4")
    b64 = base64.b64encode(video.read_bytes()).decode()
    with pytest.raises(MlflowException) as info:
        pyfunc.predict({"video_b64": b64, "filename": "pattern.mp4"})
    assert info.value.message.startswith("pattern.mp4: no face found"), info.value.message
    assert "aver-serve-" not in info.value.message  # not the temporary file


def test_uploads_over_the_limit_are_refused_before_decoding():
    from aver.errors import DataError
    from aver.tracking.video_request import decode_b64, suffix

    with pytest.raises(DataError, match=r"over the served model's limit of 1 MiB"):
        decode_b64("A" * (2 * 2**20), 1.0, "big.mp4")
    assert decode_b64("data:video/mp4;base64,AAEC", 1.0) == b"\x00\x01\x02"
    assert suffix("clip.FLV") == ".flv" and suffix(None) == ".mp4" and suffix("a.b/c") == ".mp4"

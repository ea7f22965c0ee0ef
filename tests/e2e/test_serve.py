"""The registered champion served by a real `mlflow models serve` (127.0.0.1, --env-manager
local) answers HTTP requests carrying a demo clip (base64 bytes, a path on the server), a model
batch, and bad input with a readable 400."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.support.mlflow_server import model_server

pytestmark = pytest.mark.e2e

CHAMPION = "models:/aver-demo@champion"


def post(url: str, doc: dict) -> tuple[int, dict]:
    """POST `doc` as JSON to url/invocations (no proxy); (status, JSON answer)."""
    req = urllib.request.Request(
        f"{url}/invocations", json.dumps(doc).encode(), {"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def served(demo_pipeline, tmp_path_factory):
    """(base URL, repo, classes): the demo champion served from the repo's store."""
    repo, env = demo_pipeline
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlruns.db'}"}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    classes = json.loads((repo / "data" / "raw" / "dataset.json").read_text())["classes"]
    with model_server(CHAMPION, cwd=repo, log_path=log, env=env) as url:
        yield url, repo, classes


def _clip(repo: Path) -> Path:
    from tests.test_predict import _test_clips

    return repo / "data" / "raw" / _test_clips(repo).iloc[0]["path"]


def test_a_clip_sent_as_base64_gets_probabilities_and_a_timeline(served):
    url, repo, classes = served
    clip = _clip(repo)
    b64 = base64.b64encode(clip.read_bytes()).decode()
    status, doc = post(url, {"dataframe_records": [{"video_b64": b64, "filename": clip.name}]})
    assert status == 200, doc
    [pred] = doc["predictions"]
    assert pred["video"] == clip.name
    assert list(pred["probabilities"]) == classes
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert pred["prediction"] == max(pred["probabilities"], key=pred["probabilities"].get)
    assert pred["timeline"] and all(
        set(row) == {"t", *classes} and sum(row[c] for c in classes) == pytest.approx(1.0)
        for row in pred["timeline"]
    )
    # the same clip by its path on the server: the same answer
    status, by_path = post(url, {"inputs": {"video_path": str(clip)}})
    assert status == 200, by_path
    assert by_path["predictions"][0]["probabilities"] == pytest.approx(pred["probabilities"])


def test_the_tensor_batch_still_works(served):
    import mlflow

    url, repo, _ = served
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlruns.db'}")
    try:
        model = mlflow.pyfunc.load_model(CHAMPION)
        example = model.input_example
        expected = model.predict(example)
    finally:
        mlflow.set_tracking_uri(None)
    status, doc = post(url, {"inputs": {k: np.asarray(v).tolist() for k, v in example.items()}})
    assert status == 200, doc
    np.testing.assert_allclose(np.asarray(doc["predictions"]), expected, atol=1e-5)


def test_bad_input_is_a_readable_400(served, tmp_path):
    url, _, _ = served
    status, doc = post(url, {"dataframe_records": [{"video_b64": "not a video!"}]})
    assert status == 400
    assert "video_b64 of upload is not valid base64" in doc["message"]
    assert "Traceback" not in json.dumps(doc) and "stack_trace" not in doc
    text = tmp_path / "notes.mp4"
    text.write_text("meeting notes, not a video\n")
    b64 = base64.b64encode(text.read_bytes()).decode()
    status, doc = post(url, {"dataframe_records": [{"video_b64": b64, "filename": "notes.mp4"}]})
    assert status == 400 and "notes.mp4: " in doc["message"] and "Fix:" in doc["message"]

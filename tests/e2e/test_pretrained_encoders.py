"""Pretrained encoders through the whole pipeline, as a user meets them: `dvc repro` on the
demo with randomly initialised WavLM-base and FaceNet weights (saved to files here; no hub),
from local files and from a loopback HTTP server, then `aver predict` with the model."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.support.pipeline import dvc

pytestmark = pytest.mark.e2e

AUDIO, FACE = "wavlm_base", "facenet_vggface2"
# Short training: what is tested is that every stage runs on embeddings, not accuracy.
TRAIN = {"epochs": 3, "use_tuned": False, "folds": [0]}


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(repo: Path, env: dict[str, str], dest: Path, cache: dict, torch_home: Path):
    """A private copy of the demo pipeline repo with `cache` params set and train shortened."""
    shutil.copytree(repo, dest, symlinks=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["cache"].update(cache)
    params["train"].update(TRAIN)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest, {**env, "PYTHONPATH": str(dest / "src"), "TORCH_HOME": str(torch_home)}


def _predict(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aver.cli", "predict", *args],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _a_demo_video(repo: Path) -> Path:
    raw = json.loads((repo / "data" / "raw" / "dataset.json").read_text())
    assert raw["classes"]
    return sorted((repo / "data" / "raw").rglob("*.mp4"))[0]


def test_local_weights_run_through_evaluate_and_predict(
    demo_pipeline, encoder_weights_dir, tmp_path
):
    weights = encoder_weights_dir(AUDIO, FACE)
    repo, env = _copy(
        *demo_pipeline, tmp_path / "repo",
        {"audio_encoder": AUDIO, "face_encoder": FACE, "encoder_weights": str(weights)},
        tmp_path / "torch-home",
    )  # fmt: skip
    planned = _ran(dvc(repo, env, "repro", "--dry"))
    assert {"cache", "train", "evaluate"} <= planned, planned
    assert not planned & {"download", "extract", "align"}, planned  # the encoders are cache's
    dvc(repo, env, "repro", timeout=1800)

    meta = json.loads((repo / "data/features/meta.json").read_text())
    audio_file = weights / "wavlm_base.pth"
    face_file = weights / "20180402-114759-vggface2.pt"
    assert meta["encoders"]["audio"]["name"] == AUDIO
    assert meta["encoders"]["audio"]["weights_sha256"] == _sha256(audio_file)
    assert meta["encoders"]["audio"]["layers"] == list(range(1, 13))
    assert meta["encoders"]["face"]["weights_sha256"] == _sha256(face_file)
    (ta, n_layers, dim), a_dtype = meta["arrays"]["audio"]
    assert (n_layers, dim, a_dtype) == (12, 768, "float16")
    assert ta == 1 + (round(1.6 * 16000) - 400) // 320  # the encoder's frames in the window
    assert meta["arrays"]["video"][0][1:] == [512] and meta["arrays"]["video"][1] == "float16"
    shard = np.load(repo / "data/features/shard-00000/audio_times.npy")
    np.testing.assert_allclose(np.diff(shard[0]), 0.02, atol=1e-5)  # 20 ms hop

    from aver.training.checkpoints import read_model_file

    card = read_model_file(repo / "models/model.pt").card
    assert card.encoder.audio is not None and card.encoder.face is not None
    assert card.encoder.audio["weights_sha256"] == _sha256(audio_file)
    assert card.input.audio_layers == 12 and card.input.video_dim == 512
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlruns.db'}")
    exp = client.get_experiment_by_name("aver-demo")
    train = [r for r in client.search_runs([exp.experiment_id])
             if r.data.tags.get("aver.stage") == "train"
             and "mlflow.parentRunId" not in r.data.tags]  # fmt: skip
    latest = max(train, key=lambda r: r.info.start_time)  # (the copy holds the demo's run too)
    assert latest.data.tags["encoder.audio"] == AUDIO
    assert latest.data.tags["encoder.audio.weights_sha256"] == _sha256(audio_file)
    assert latest.data.tags["encoder.face.weights_sha256"] == _sha256(face_file)

    video = _a_demo_video(repo)
    ok = _predict(repo, env, str(video), "--json")
    assert ok.returncode == 0, ok.stderr
    probs = json.loads(ok.stdout)["probabilities"]
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)

    # Other weights for the same encoder (a different initialisation): refused, clearly.
    other = encoder_weights_dir(AUDIO, FACE, seed=1)
    bad = _predict(repo, env, str(video), "--json", "--encoder-weights", str(other))
    assert bad.returncode == 1 and not bad.stdout
    err = bad.stderr.strip().splitlines()[-1]
    assert err.startswith("aver predict: error:") and "sha256" in err and AUDIO in err, err

    # A changed encoder setting reruns cache and what follows, never extract or align.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["cache"]["audio_encoder"] = "logmel"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    planned = _ran(dvc(repo, env, "repro", "--dry"))
    assert "cache" in planned and not planned & {"download", "extract", "align"}, planned


# slow (about 2 min); downloads are unit-tested in tests/encoders, tests/io/test_weights.py
@pytest.mark.slow
def test_weights_download_from_a_loopback_server(
    demo_pipeline, encoder_weights_dir, http_server, tmp_path
):
    """The download path: encoder_urls on a loopback server, sha256 verified, into the torch
    hub cache ($TORCH_HOME), then through evaluate; a second cache run fetches nothing."""
    weights = encoder_weights_dir(AUDIO)
    audio_file = weights / "wavlm_base.pth"
    http_server.add("/w/wavlm_base.pth", audio_file.read_bytes())
    torch_home = tmp_path / "torch-home"
    repo, env = _copy(
        *demo_pipeline, tmp_path / "repo",
        {"audio_encoder": AUDIO, "encoder_urls": {AUDIO: http_server.url("/w/wavlm_base.pth")},
         "encoder_sha256": {AUDIO: _sha256(audio_file)}},
        torch_home,
    )  # fmt: skip
    dvc(repo, env, "repro", timeout=1800)
    cached = torch_home / "hub" / "checkpoints" / "wavlm_base.pth"
    assert cached.is_file() and _sha256(cached) == _sha256(audio_file)
    meta = json.loads((repo / "data/features/meta.json").read_text())
    assert meta["encoders"]["audio"]["weights_sha256"] == _sha256(audio_file)
    assert meta["encoders"]["face"]["name"] == "crops"
    assert (repo / "reports/metrics.json").is_file()
    fetched = len(http_server.requests_for("/w/wavlm_base.pth"))
    dvc(repo, env, "repro", "-f", "cache")
    assert len(http_server.requests_for("/w/wavlm_base.pth")) == fetched  # from the cache


def test_missing_weights_offline_fail_before_any_work(demo_pipeline, tmp_path):
    torch_home = tmp_path / "empty-torch-home"
    repo, env = _copy(
        *demo_pipeline, tmp_path / "repo", {"audio_encoder": "wavlm_base_plus"}, torch_home
    )
    env["AVER_OFFLINE"] = "1"
    proc = subprocess.run(
        ["dvc", "repro", "cache"], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "wavlm_base_plus.pth" in out  # the file name
    assert "https://download.pytorch.org/torchaudio/models/wavlm_base_plus.pth" in out  # its URL
    assert str(torch_home / "hub" / "checkpoints") in out  # where to put it
    assert "cache.encoder_weights" in out  # or the param to point at it
    assert not (repo / "data" / "features.partial").exists()  # before any clip was touched

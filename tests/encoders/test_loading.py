"""load_encoders resolves every weights file before building anything; identity() records the
encoders; check_same_encoders refuses a mismatch."""

from __future__ import annotations

import hashlib

import pytest

from aver.config import CacheConfig
from aver.encoders import loading
from aver.encoders.loading import check_same_encoders, load_encoders
from aver.errors import DataError, DownloadError
from aver.io.weights import OFFLINE_ENV


def test_identity_of_scratch_inputs_is_just_their_name():
    enc = load_encoders(CacheConfig(audio_encoder="mfcc"))
    assert enc.audio is None and enc.face is None
    assert enc.identity() == {"audio": {"name": "mfcc"}, "face": {"name": "crops"}}


def test_identity_records_name_weights_layers_and_geometry(encoder_weights_dir):
    folder = encoder_weights_dir("hubert_base", "facenet_vggface2")
    cfg = CacheConfig(audio_encoder="hubert_base", audio_layers=[12, 3],
                      face_encoder="facenet_vggface2", encoder_weights=str(folder))  # fmt: skip
    ident = load_encoders(cfg, device="cpu").identity()
    audio_sha = hashlib.sha256((folder / "hubert_fairseq_base_ls960.pth").read_bytes()).hexdigest()
    assert ident["audio"] == {
        "name": "hubert_base",
        "weights": "hubert_fairseq_base_ls960.pth",
        "weights_sha256": audio_sha,
        "layers": [12, 3],
        "n_layers": 12,
        "dim": 768,
        "hop_s": 0.02,
        "receptive_field_s": 0.025,
        "sample_rate": 16000,
    }
    assert ident["face"]["name"] == "facenet_vggface2"
    assert ident["face"]["weights"] == "20180402-114759-vggface2.pt"
    assert (ident["face"]["dim"], ident["face"]["input_size"]) == (512, 160)
    check_same_encoders(ident, ident, source="model.pt")


def test_missing_weights_fail_before_any_model_is_built(encoder_weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    built = []
    monkeypatch.setattr(loading, "AudioEncoder", lambda *a, **k: built.append(a))
    monkeypatch.setattr(loading, "FaceEncoder", lambda *a, **k: built.append(a))
    folder = encoder_weights_dir("wavlm_base")  # holds the audio file, not resnet50's
    cfg = CacheConfig(audio_encoder="wavlm_base", face_encoder="resnet50",
                      encoder_weights=str(folder))  # fmt: skip
    with pytest.raises(DownloadError, match=r"resnet50-0676ba61\.pth") as err:
        load_encoders(cfg)
    assert f"or in {folder} (cache.encoder_weights)" in str(err.value)
    assert built == []


@pytest.mark.parametrize(
    ("modality", "key", "value"),
    [("audio", "name", "wavlm_base"), ("audio", "weights_sha256", "b" * 64),
     ("audio", "layers", [1, 2]), ("face", "name", "crops")],
)  # fmt: skip
def test_a_different_encoder_is_refused_with_the_fix(modality, key, value):
    trained = {
        "audio": {"name": "wavlm_base_plus", "weights_sha256": "a" * 64, "layers": [1, 2, 3]},
        "face": {"name": "resnet18", "weights_sha256": "c" * 64},
    }
    here = {m: dict(v) for m, v in trained.items()}
    here[modality] = {**here[modality], key: value}
    if value == "crops":
        here["face"] = {"name": "crops"}
    with pytest.raises(DataError) as err:
        check_same_encoders(trained, here, source="models/model.pt")
    msg = str(err.value)
    name = trained[modality]["name"]  # the message names the encoder the model was trained on
    assert f"{modality} encoder {name} {key}" in msg and "models/model.pt" in msg
    assert "cache.encoder_weights" in msg and "retrain" in msg

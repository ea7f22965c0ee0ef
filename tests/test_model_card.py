"""The model card: round trip through model.pt, old (v1) files still load and give the same
probabilities, renamed config keys are tolerated, unknown future versions are refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from aver.config import Params, parse_params
from aver.errors import DataError
from aver.features import batch_from_arrays
from aver.inference import load_trained_model, probabilities
from aver.model_card import CARD_VERSION, ModelCard, card_from_params, read_card
from aver.models import build_model
from aver.training import checkpoints
from tests.fixtures.make_model_v1 import fixed_inputs

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "model-v1.pt"
CLASSES = ["angry", "happy", "neutral"]
META = {
    "audio": {"feature": "logmel", "sample_rate": 22050, "n_frames": 200},
    "video": {"fps": 5.0, "size": 32, "n_frames": 10},
    "config": {**Params().cache.model_dump(mode="json"), "face_size": 32},
}


def _params() -> Params:
    return parse_params(
        {
            "cache": {"face_size": 32},
            "train": {"model": {"name": "msan", "d_model": 16, "heads": 2, "layers": 1}},
            "align": {"retinaface_url": "https://user:hunter2@example.com/w.pth"},
        },
        "test",
    )


def _card() -> ModelCard:
    stats = {"audio_mean": [0.0] * 64, "audio_std": [1.0] * 64, "video_mean": [0.5] * 3,
             "video_std": [0.25] * 3, "n_clips": 4}  # fmt: skip
    return card_from_params(
        _params(),
        classes=CLASSES,
        dims={"audio_dim": 64, "face_size": 32},
        stats=stats,
        cache_meta=META,
        run={"fold": 1, "seed": 0, "val_uar": 0.5, "data_fingerprint": "abc"},
        git_commit="deadbeef",
    )


def test_card_round_trip_through_the_model_file(tmp_path):
    card = _card()
    assert card.card_version == CARD_VERSION == 2
    assert card.input.sample_rate == 22050 and card.input.audio_frames == 200
    assert card.input.face_size == 32 and card.input.video_fps == 5.0
    assert card.provenance.git_commit == "deadbeef" and card.provenance.aver_version
    assert card.encoder.name is None
    assert "hunter2" not in card.to_json()  # feature settings are redacted
    assert read_card(card.to_json()) == card
    params = _params()
    torch.manual_seed(0)
    net = build_model(params.train.model, n_classes=3, audio_dim=64, face_size=32)
    checkpoints.save_model_file(tmp_path / "model.pt", net.state_dict(), card)
    raw = torch.load(tmp_path / "model.pt", weights_only=True)  # weights + a JSON string only
    assert raw["format"] == checkpoints.MODEL_FORMAT and isinstance(raw["card"], str)
    assert json.loads(raw["card"])["card_version"] == 2
    file = checkpoints.read_model_file(tmp_path / "model.pt")
    assert file.card == card
    assert all(torch.equal(file.state_dict[k], v) for k, v in net.state_dict().items())
    trained = load_trained_model(tmp_path / "model.pt")
    assert trained.classes == CLASSES
    assert trained.card.network_config() == params.train.model
    assert trained.card.section("cache").face_size == 32
    assert trained.card.section("extract") == params.extract
    assert trained.card.fold_stats().n_clips == 4


def test_embedding_dims_round_trip_and_rebuild_the_embedding_front_ends(tmp_path):
    """A model trained on encoder layers and face embeddings: its card keeps the four dims and
    the loaded model gets the same front-ends and weights."""
    from aver.models.encoders import EmbeddingFrameEncoder, LayerWeightedAudioEncoder

    dims = {"audio_dim": 24, "face_size": 0, "audio_layers": 5, "video_dim": 12}
    card = card_from_params(_params(), classes=CLASSES, dims=dims, cache_meta=META)
    assert card.dims == dims and read_card(card.to_json()) == card
    torch.manual_seed(0)
    net = build_model(_params().train.model, n_classes=3, **dims)
    checkpoints.save_model_file(tmp_path / "model.pt", net.state_dict(), card)
    trained = load_trained_model(tmp_path / "model.pt")
    assert trained.card.dims == dims
    assert isinstance(trained.model.audio, LayerWeightedAudioEncoder)
    assert isinstance(trained.model.video, EmbeddingFrameEncoder)
    loaded = trained.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())


def test_a_model_file_written_by_the_old_code_loads_and_gives_its_probabilities():
    """tests/fixtures/model-v1.pt was written by main before the card (make_model_v1.py)."""
    expected = json.loads((FIXTURES / "model-v1.json").read_text())
    trained = load_trained_model(V1)
    card = trained.card
    assert trained.classes == expected["classes"]
    assert card.provenance.converted_from == 1 and card.provenance.notes == []
    assert card.network_config().d_model == 16
    assert card.dims == {"audio_dim": 8, "face_size": 16, "audio_layers": 0, "video_dim": 0}
    assert card.input.audio_feature == "mfcc" and card.input.video_frames == 4
    assert card.run["fold"] == 0 and "stats" not in card.run and "cache_meta" not in card.run
    batch = batch_from_arrays(fixed_inputs(), card.fold_stats())
    np.testing.assert_allclose(
        probabilities(trained.model, batch), expected["probabilities"], rtol=0, atol=1e-6
    )


def test_v1_params_are_not_revalidated_against_todays_schema(caplog):
    """A renamed or removed key elsewhere in the old Params dump does not matter; one in the
    model section is dropped with a warning."""
    raw = checkpoints.load_model_file(V1)
    raw["params"]["train"]["renamed_long_ago"] = 1
    raw["params"]["tune"] = {"gone": True}
    raw["params"]["train"]["model"]["old_knob"] = 3
    with caplog.at_level(logging.WARNING):
        card = read_card(raw)
        cfg = card.network_config()
    assert cfg.d_model == 16 and "old_knob" in caplog.text


def test_v1_without_cache_meta_or_stats_says_so():
    raw = checkpoints.load_model_file(V1)
    del raw["info"]["cache_meta"], raw["info"]["stats"]
    card = read_card(raw)
    assert card.stats is None and card.fold_stats() is None
    assert card.section("cache").n_mfcc == 8  # from the params dump
    assert card.provenance.notes == [
        "cache settings from the model's params",
        "no normalisation stats stored",
    ]


def test_unknown_versions_are_refused_with_a_clear_error(tmp_path):
    doc = json.loads(_card().to_json())
    with pytest.raises(DataError, match=r"version 3 is not one this aver reads") as err:
        read_card({**doc, "card_version": 3})
    assert "upgrade aver" in str(err.value)
    checkpoints.save(
        tmp_path / "future.pt",
        {"format": checkpoints.MODEL_FORMAT, "state_dict": {},
         "card": json.dumps({**doc, "card_version": 99})},
    )  # fmt: skip
    with pytest.raises(DataError, match=r"future\.pt.*version 99"):
        checkpoints.read_model_file(tmp_path / "future.pt")
    with pytest.raises(DataError, match="invalid model card"):
        read_card({**doc, "classes": "not a list"})


def test_settings_that_no_longer_validate_name_the_card():
    doc = json.loads(_card().to_json())
    doc["model"]["d_model"] = -1
    with pytest.raises(DataError, match="model card: model"):
        read_card(doc).network_config()

"""Checkpoint files: atomic, weights_only-loadable, RNG states restored exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from aver.errors import DataError
from aver.training import checkpoints


def test_rng_state_roundtrip_through_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    checkpoints.save(tmp_path / "s.pt", {"rng": checkpoints.rng_state()})
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    state = torch.load(tmp_path / "s.pt", weights_only=True)  # plain types and tensors only
    checkpoints.set_rng_state(state["rng"])
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist()) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]  # no temp file left behind


def test_bad_files_raise_data_error_naming_them(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.pt"):
        checkpoints.load(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"junk\.pt"):
        checkpoints.load(tmp_path / "junk.pt")
    checkpoints.save(tmp_path / "other.pt", {"format": "x"})
    with pytest.raises(DataError, match="not an aver model file"):
        checkpoints.load_model_file(tmp_path / "other.pt")


def test_model_file_roundtrip(tmp_path):
    from aver.config import Params
    from aver.model_card import card_from_params

    lin = torch.nn.Linear(3, 2)
    card = card_from_params(
        Params(),
        classes=["a", "b"],
        dims={"audio_dim": 3, "face_size": 8},
        run={"fold": 0, "val_uar": 0.5},
    )
    checkpoints.save_model_file(tmp_path / "model.pt", lin.state_dict(), card)
    obj = checkpoints.read_model_file(tmp_path / "model.pt")
    assert obj.card.classes == ["a", "b"]
    assert obj.card.dims == {"audio_dim": 3, "face_size": 8, "audio_layers": 0, "video_dim": 0}
    assert torch.equal(obj.state_dict["weight"], lin.weight)
    assert obj.card.run["val_uar"] == 0.5

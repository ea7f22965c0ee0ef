"""One config resolution: params.yaml -> preset -> tuned values -> overrides, validated once."""

from __future__ import annotations

import dataclasses

import pytest

from aver.config import parse_params
from aver.errors import ConfigError
from aver.resolution import Resolved, resolve
from aver.training.presets import PRESETS


def _tuned(tmp_path, text: str = "train.lr: 0.0003\ntrain.model.d_model: 32\n") -> None:
    (tmp_path / "reports/tune").mkdir(parents=True)
    (tmp_path / "reports/tune/best_params.yaml").write_text(text)


def test_tuned_params_override_preset_and_yaml(tmp_path):
    _tuned(tmp_path)
    params = parse_params({"train": {"preset": "demo_fast", "lr": 0.5, "use_tuned": True}})
    res = resolve(params, tmp_path)
    assert res.params.train.lr == 0.0003 and res.params.train.model.d_model == 32
    assert res.params.train.epochs == PRESETS["demo_fast"]["epochs"]
    assert res.applied["tuned.train.lr"] == 0.0003 and res.applied["preset.lr"] == 3e-3


def test_overrides_come_last_and_are_recorded(tmp_path):
    _tuned(tmp_path)
    params = parse_params({"train": {"preset": "demo_fast", "use_tuned": True}})
    res = resolve(params, tmp_path, overrides={"train.lr": 0.02, "train.epochs": 2})
    assert (res.params.train.lr, res.params.train.epochs) == (0.02, 2)
    assert res.applied["override.train.lr"] == 0.02
    with pytest.raises(ConfigError, match=r"train\.lrr"):
        resolve(params, tmp_path, overrides={"train.lrr": 1.0})


def test_tuned_false_skips_the_tuned_file(tmp_path):
    """The tune stage resolves without tuned values: they are its output (may not exist yet)."""
    params = parse_params({"train": {"preset": "avtca_paper", "use_tuned": True}})
    res = resolve(params, tmp_path, tuned=False)
    assert res.params.train.model.name == "avtca"
    assert not [k for k in res.applied if k.startswith("tuned.")]


def test_resolved_is_frozen_and_plain_params_pass_through():
    params = parse_params({"train": {"lr": 0.5}})
    res = resolve(params)
    assert isinstance(res, Resolved) and res.params == params and res.applied == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.params = params  # type: ignore[misc]


def test_missing_tuned_file_names_the_file(tmp_path):
    params = parse_params({"train": {"use_tuned": True}})
    with pytest.raises(ConfigError, match=r"best_params\.yaml") as err:
        resolve(params, tmp_path)
    assert "dvc repro tune" in str(err.value)
    (tmp_path / "bad.yaml").write_text("train.nope: 1\n")
    params = parse_params({"train": {"use_tuned": True, "tuned_params": "bad.yaml"}})
    with pytest.raises(ConfigError, match=r"train\.nope"):
        resolve(params, tmp_path)


def test_tuned_key_of_another_model_is_dropped_not_refused(tmp_path, caplog, monkeypatch):
    """A sweep over msan keys, then train.preset avtca_paper: the msan-only key is ignored."""
    monkeypatch.setattr("aver.models._logged", set())  # logged once per process
    _tuned(tmp_path, "train.lr: 0.0003\ntrain.model.ctm_weight: 0.3\n")
    caplog.set_level("INFO", logger="aver.models")
    params = parse_params({"train": {"preset": "avtca_paper", "use_tuned": True}})
    res = resolve(params, tmp_path)
    assert res.params.train.model.name == "avtca" and res.params.train.lr == 0.0003
    assert not hasattr(res.params.train.model, "ctm_weight")
    assert any("ctm_weight" in r.getMessage() for r in caplog.records)

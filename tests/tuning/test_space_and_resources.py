"""Search-space mapping and per-trial resource detection."""

from __future__ import annotations

import re

import pytest
from ray import tune

from aver.config import SearchParam
from aver.errors import ConfigError
from aver.tuning.resources import loader_workers
from aver.tuning.space import build_space


def test_space_maps_each_distribution():
    space = build_space(
        {
            "train.lr": SearchParam(type="loguniform", low=1e-4, high=1e-2),
            "train.model.dropout": SearchParam(type="uniform", low=0.0, high=0.3),
            "train.model.layers": SearchParam(type="randint", low=1, high=3),
            "train.model.position": SearchParam(type="choice", values=["none", "tarope"]),
        }
    )
    assert isinstance(space["train.lr"], tune.search.sample.Float)
    assert space["train.lr"].lower == 1e-4 and space["train.lr"].upper == 1e-2
    # randint is written inclusive in params.yaml; Ray's upper bound is exclusive.
    assert space["train.model.layers"].upper == 4
    assert space["train.model.position"].categories == ["none", "tarope"]
    samples = {space["train.model.layers"].sample() for _ in range(200)}
    assert samples == {1, 2, 3}


@pytest.mark.parametrize(
    "spec",
    [
        SearchParam(type="choice", values=[]),
        SearchParam(type="uniform", low=1.0, high=0.5),
        SearchParam(type="loguniform", low=0.0, high=1.0),
    ],
)
def test_bad_space_names_the_key(spec):
    with pytest.raises(ConfigError, match=r"tune\.space\.train\.x"):
        build_space({"train.x": spec})


def test_loader_workers_leave_one_cpu_for_the_loop():
    assert loader_workers(1) == 0
    assert loader_workers(4) == 3


def _space_error(space: dict) -> str:
    """The ConfigError a params file with this tune.space gets at stage start."""
    from aver.config import parse_params
    from aver.tuning.space import validate_space

    with pytest.raises(ConfigError) as err:
        validate_space(parse_params({"tune": {"space": space}}))
    return str(err.value)


LR = {"type": "loguniform", "low": 1e-4, "high": 1e-2}


@pytest.mark.parametrize(
    ("key", "spec", "says"),
    [
        ("train.lrr", LR, r"train has no key 'lrr'.*\n.*keys under train: .*\blr\b"),
        ("train.model.dropoutt", LR, r"train.model has no key 'dropoutt'"),
        ("lr", LR, r"only train\.\* keys can be searched"),
        ("cache.window_s", LR, r"only train\.\* keys"),
        ("train.model", LR, r"train.model is a section.*\n.*e\.g\. train\.model\.\w+"),
        ("train.lr.x", LR, r"train.lr is not a section"),
        ("train.epochs", {"type": "randint", "low": 2, "high": 4}, r"tune\.max_epochs"),
        ("train.lr", {"type": "uniform", "low": 0.5, "high": 0.5}, r"needs low < high"),
        ("train.lr", {"type": "uniform", "low": 0.5, "high": 0.1}, r"low=0\.5, high=0\.1"),
        ("train.lr", {"type": "loguniform", "low": 0.0, "high": 0.1}, r"needs low > 0"),
        ("train.lr", {"type": "uniform", "high": 0.1}, r"needs 'low' and 'high'"),
        ("train.lr", {"type": "uniform", "low": -1.0, "high": 0.1}, r"-1\.0 is not a valid"),
        ("train.lr", {"type": "uniform", "low": "abc", "high": 0.1}, r"low: .*valid number"),
        ("train.lr", {"type": "gaussian", "low": 0.1, "high": 0.2}, r"type: 'gaussian'.*"),
        ("train.lr", {"type": "uniform", "low": 0.1, "high": 0.2, "values": [1]}, r"only for"),
        (
            "train.batch_size",
            {"type": "uniform", "low": 4, "high": 16},
            r"is an integer.*\n.*randint",
        ),
        ("train.batch_size", {"type": "randint", "low": 4.5, "high": 16}, r"whole-number"),
        ("train.optimizer", {"type": "uniform", "low": 0, "high": 1}, r"not numeric.*'adam'"),
        ("train.augment", {"type": "randint", "low": 0, "high": 1}, r"not numeric \(bool\)"),
        ("train.optimizer", {"type": "choice", "values": []}, r"non-empty 'values'"),
        ("train.optimizer", {"type": "choice"}, r"non-empty 'values'"),
        (
            "train.optimizer",
            {"type": "choice", "values": ["adam", "lion"]},
            r"'lion' is not a valid",
        ),
        ("train.model.dropout", {"type": "choice", "values": [0.1, 1.5]}, r"1\.5 is not a valid"),
    ],
)
def test_bad_space_fails_at_stage_start_naming_the_key(key, spec, says):
    text = _space_error({"train.weight_decay": {"type": "choice", "values": [0.0]}, key: spec})
    assert f"tune.space.{key}" in text, text
    assert re.search(says, text), text
    assert "Fix:" in text


def test_good_space_passes_validation():
    from aver.config import parse_params
    from aver.tuning.space import validate_space

    space = {
        "train.lr": LR,
        "train.model.dropout": {"type": "uniform", "low": 0.0, "high": 1.0},  # high excluded
        "train.batch_size": {"type": "randint", "low": 4, "high": 16},
        "train.early_stop_patience": {"type": "randint", "low": 2, "high": 5},  # int | None
        "train.model.name": {"type": "choice", "values": ["msan", "avtca"]},
        "train.augment": {"type": "choice", "values": [True, False]},
    }
    validate_space(parse_params({"tune": {"space": space}}))
    assert _space_error({}).startswith("tune.space is empty")


def test_tune_stage_validates_the_space_before_mlflow_or_ray(tmp_path, monkeypatch):
    from aver.config import parse_params
    from aver.tuning import pipeline

    monkeypatch.chdir(tmp_path)
    started = []
    monkeypatch.setattr(pipeline.runs, "setup", lambda *a: started.append("mlflow"))
    monkeypatch.setattr(pipeline, "init_ray", lambda *a: started.append("ray"))
    params = parse_params({"tune": {"space": {"train.lrr": LR}}, "train": {"use_tuned": True}})
    with pytest.raises(ConfigError, match=r"tune\.space\.train\.lrr"):
        pipeline.run(params)
    assert started == []


def test_space_keys_of_other_models_are_skipped_with_a_log_line(caplog):
    from aver.config import parse_params
    from aver.tuning.space import key_models, space_for_model, validate_space

    assert key_models("train.model.ctm_weight") == ["msan"]
    assert "avtca" in key_models("train.model.dropout") and "avtca" in key_models("train.lr")
    assert key_models("train.model.variant") == ["avtca"]
    space = {
        "train.lr": LR,
        "train.model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
        "train.model.ctm_weight": {"type": "uniform", "low": 0.0, "high": 0.3},
        "train.model.variant": {"type": "choice", "values": ["it4", "full"]},
    }
    caplog.set_level("INFO", logger="aver.tuning.space")
    msan = space_for_model(parse_params({"tune": {"space": space}}))
    assert list(msan.tune.space) == ["train.lr", "train.model.dropout", "train.model.ctm_weight"]
    raw = {"tune": {"space": space}, "train": {"model": {"name": "avtca"}}}
    avtca = space_for_model(parse_params(raw))
    assert list(avtca.tune.space) == ["train.lr", "train.model.dropout", "train.model.variant"]
    validate_space(avtca)
    said = [r.getMessage() for r in caplog.records]
    assert "tune.space.train.model.ctm_weight: a key of msan, not of train.model.name=avtca" in (
        " ".join(said)
    )


def test_tune_stage_searches_the_preset_model(tmp_path, monkeypatch):
    """train.preset avtca_paper: the sweep validates and searches AVT-CA's keys, not msan's."""
    from aver.config import parse_params
    from aver.tuning import pipeline

    monkeypatch.chdir(tmp_path)
    seen = []

    def stop(params):
        seen.append(params)
        raise ConfigError("stop here")

    monkeypatch.setattr(pipeline, "validate_space", stop)
    space = {"train.lr": LR, "train.model.ctm_weight": {"type": "uniform", "low": 0, "high": 1}}
    raw = {"tune": {"space": space}, "train": {"preset": "avtca_paper", "use_tuned": True}}
    params = parse_params(raw)
    with pytest.raises(ConfigError, match="stop here"):
        pipeline.run(params)
    (resolved,) = seen
    assert resolved.train.model.name == "avtca" and resolved.train.optimizer == "adam"
    assert list(resolved.tune.space) == ["train.lr"]

"""params.yaml validation: bad keys, types and choices fail with the key and allowed values."""

from __future__ import annotations

import pytest
import yaml

from aver.config import Params, flatten, load_params, parse_params
from aver.errors import ConfigError


def test_repo_params_yaml_is_valid_and_complete(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert params.data.dataset == "demo"
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    # Single source of truth: every section the code knows is written out in params.yaml.
    assert set(raw) == set(Params.model_fields)


def test_unknown_dataset_names_key_and_choices():
    with pytest.raises(ConfigError) as err:
        parse_params({"data": {"dataset": "ravdes"}})
    msg = str(err.value)
    assert "data.dataset" in msg and "'ravdes'" in msg
    for name in ("demo", "ravdess", "cremad", "mosei", "folder"):
        assert name in msg


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError) as err:
        parse_params({"train": {"learning_rate": 0.1}})
    msg = str(err.value)
    assert "train.learning_rate: unknown key" in msg
    assert "lr" in msg and "batch_size" in msg


def test_wrong_type_names_key():
    with pytest.raises(ConfigError) as err:
        parse_params({"extract": {"fps": "fast"}})
    assert "extract.fps" in str(err.value)


def test_missing_file_is_actionable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err.value) and "Fix:" in str(err.value)


def test_flatten_uses_dotted_keys():
    flat = flatten(parse_params({"train": {"lr": 0.5}}))
    assert flat["train.lr"] == 0.5
    assert flat["train.model.name"] == "msan"
    assert flat["data.dataset"] == "demo"


def test_with_overrides_applies_dotted_keys_and_validates():
    from aver.config import with_overrides

    base = parse_params({})
    new = with_overrides(base, {"train.lr": 0.01, "train.model.d_model": 32})
    assert new.train.lr == 0.01 and new.train.model.d_model == 32
    assert base.train.lr != 0.01  # the original is untouched
    with pytest.raises(ConfigError, match=r"train\.lrr"):
        with_overrides(base, {"train.lrr": 1.0})
    with pytest.raises(ConfigError, match=r"train\.model\.position"):
        with_overrides(base, {"train.model.position": "bogus"})

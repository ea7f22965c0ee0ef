"""params.yaml validation: bad keys, types and choices fail with the key and allowed values."""

from __future__ import annotations

import math

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


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("download:\n  backoff_s: .inf\n", "download.backoff_s"),
        ("train:\n  model:\n    ctm_weight: .nan\n", "train.model.ctm_weight"),
        ("train:\n  momentum: nan\n", "train.momentum"),
        ("extract:\n  min_duration_s: 1e400\n", "extract.min_duration_s"),
        (
            "tune:\n  space:\n    train.lr: {type: loguniform, low: -.inf, high: 0.1}\n",
            "tune.space.train.lr.low",
        ),
        (
            "tune:\n  space:\n    train.lr: {type: choice, values: [0.1, .nan]}\n",
            "tune.space.train.lr.values.1",
        ),
    ],
)
def test_non_finite_numbers_are_refused_with_the_dotted_key(tmp_path, text, key):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert f"{key}: " in msg and "not a finite number" in msg, msg
    assert str(path) in msg and "Fix:" in msg, msg


def test_heads_not_dividing_d_model_fail_at_load_params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  model:\n    d_model: 64\n    heads: 3\n")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    msg = str(err.value)
    assert "train.model.heads=3 does not divide train.model.d_model=64" in msg, msg
    assert "set train.model.d_model to a multiple of heads (e.g. 66)" in msg, msg


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"train": {"model": {"d_model": 12, "heads": 4}}}, "needs an even head width"),
        ({"train": {"model": {"name": "avtca", "d_model": 66}}}, "a multiple of 4"),
        (
            {"cache": {"face_size": 16}, "train": {"model": {"video_patches": 5}}},
            "cache.face_size=16 is too small for .* train.model.video_patches=5",
        ),
    ],
)
def test_model_shapes_that_cannot_be_built_are_refused(raw, words):
    with pytest.raises(ConfigError, match=words):
        parse_params(raw)


def test_buildable_shapes_pass():
    parse_params({"train": {"model": {"name": "avtca", "variant": "it1", "d_model": 66}}})
    parse_params({"train": {"model": {"d_model": 12, "heads": 4, "position": "none"}}})


def test_default_ctm_and_tarope_geometry():
    """Every audio token has a video positive and the slowest TaRoPE pair turns ~1 rad."""
    from aver import geometry

    p = Params()
    m, c = p.train.model, p.cache
    assert (m.rope_base, m.tau_s, m.ctm_delta_s) == (100.0, 0.04, 0.1)
    assert m.ctm_delta_s >= geometry.min_ctm_delta(c.video_fps)
    turn = geometry.lowest_rope_rotation(
        c.window_s, tau_s=m.tau_s, base=m.rope_base, d_head=m.d_model // m.heads
    )
    assert 0.5 < turn < math.pi


def test_ctm_delta_without_positives_warns_once(caplog):
    caplog.set_level("WARNING", logger="aver.config")
    raw = {"cache": {"video_fps": 4.0}, "train": {"model": {"ctm_delta_s": 0.05}}}
    parse_params(raw)
    parse_params(raw)
    hits = [r for r in caplog.records if "ctm_delta_s=0.05" in r.getMessage()]
    assert len(hits) == 1
    assert "about 40% of the audio tokens" in hits[0].getMessage()
    assert "ctm_delta_s >= 0.125" in hits[0].getMessage()


@pytest.mark.parametrize(
    "model",
    [
        {"ctm_delta_s": 0.1},
        {"ctm_delta_s": 0.03, "ctm_weight": 0.0},
        {"ctm_delta_s": 0.03, "name": "avtca"},
    ],
)
def test_ctm_delta_warning_only_when_it_matters(caplog, model):
    caplog.set_level("WARNING", logger="aver.config")
    parse_params({"cache": {"video_fps": 5.0}, "train": {"model": model}})
    assert not [r for r in caplog.records if "ctm_delta_s" in r.getMessage()]


def test_model_keys_of_another_model_are_dropped_with_one_info_line(caplog, monkeypatch):
    """params.yaml holds msan and avtca keys side by side: the other model's are ignored."""
    monkeypatch.setattr("aver.models._logged", set())
    caplog.set_level("INFO", logger="aver.models")
    raw = {"train": {"model": {"name": "avtca", "ctm_weight": 0.3, "variant": "it1"}}}
    model = parse_params(raw).train.model
    parse_params(raw)
    assert model.name == "avtca" and model.variant == "it1"
    assert "ctm_weight" not in model.model_dump()
    hits = [r.getMessage() for r in caplog.records if "ctm_weight" in r.getMessage()]
    assert hits == ["train.model: model avtca does not use ctm_weight (ignored)"]


def test_unknown_model_key_and_name_name_the_valid_ones():
    from aver.models import MODEL_CONFIGS

    with pytest.raises(ConfigError) as err:
        parse_params({"train": {"model": {"ctm_wieght": 0.3}}})
    msg = str(err.value)
    assert "train.model.ctm_wieght: unknown key; keys of model msan:" in msg
    assert "ctm_weight" in msg and "variant" not in msg
    with pytest.raises(ConfigError) as err:
        parse_params({"train": {"model": {"name": "msam"}}})
    assert "train.model.name: 'msam' is not allowed" in str(err.value)
    assert all(repr(name) in str(err.value) for name in MODEL_CONFIGS)


def test_dataset_names_come_from_the_dataset_registry():
    from aver.datasets import DATASETS

    assert DATASETS == ("demo", "ravdess", "cremad", "mosei", "folder")
    for name in DATASETS:
        assert parse_params({"data": {"dataset": name}}).data.dataset == name


def test_config_imports_no_torch():
    """aver.config (and the model registry it uses) stays torch-free."""
    import subprocess
    import sys

    code = "import sys, aver.config, aver.models; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_preset_names_come_from_the_preset_table():
    from aver.training.presets import PRESETS

    for name in ["none", *PRESETS]:
        assert parse_params({"train": {"preset": name}}).train.preset == name
    listed = ", ".join(repr(n) for n in ["none", *PRESETS])
    with pytest.raises(ConfigError, match=f"valid choices: {listed}"):
        parse_params({"train": {"preset": "avtca_papr"}})


def test_face_size_is_checked_only_for_face_crops():
    """A face encoder's embeddings have no conv stem, so cache.face_size does not limit it."""
    params = parse_params(
        {"cache": {"face_size": 16, "face_encoder": "facenet_vggface2"},
         "train": {"model": {"video_patches": 5}}}
    )  # fmt: skip
    assert params.cache.pretrained_face
    with pytest.raises(ConfigError, match="face_size=16 is too small"):
        parse_params({"cache": {"face_size": 16}, "train": {"model": {"video_patches": 5}}})


def test_encoder_settings_are_validated():
    with pytest.raises(ConfigError, match="wavlm_base_plus"):
        parse_params({"cache": {"audio_encoder": "wavlm_bas"}})
    with pytest.raises(ConfigError, match=r"audio_layers \[13\]"):
        parse_params({"cache": {"audio_encoder": "wavlm_base", "audio_layers": [13]}})
    with pytest.raises(ConfigError, match="has no layers"):
        parse_params({"cache": {"audio_layers": [1]}})
    with pytest.raises(ConfigError, match="not a sha256"):
        parse_params({"cache": {"encoder_sha256": {"wavlm_base": "abc"}}})
    legacy = parse_params({"cache": {"audio_feature": "mfcc"}})
    assert legacy.cache.audio_encoder == "mfcc"  # the old key still reads
    assert parse_params({"cache": {"audio_encoder": "hubert_large"}}).cache.kept_layers == list(
        range(1, 25)
    )


def test_max_clip_s_is_at_least_one_window():
    from aver.config import CacheConfig

    assert CacheConfig().max_clip_s == 10.0
    assert CacheConfig(window_s=12.0).max_clip_s == 12.0  # unset: one window at least
    assert CacheConfig(window_s=2.0, max_clip_s=2.0).max_clip_s == 2.0
    with pytest.raises(ValueError, match="max_clip_s >= window_s"):
        CacheConfig(window_s=3.0, max_clip_s=2.0)

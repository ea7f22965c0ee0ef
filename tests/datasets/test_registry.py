"""The dataset registry: names, lazy imports, unknown names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aver import config
from aver.datasets import DATASETS, get_dataset
from aver.datasets.base import DatasetSpec
from aver.errors import ConfigError


def test_registry_names_match_the_config_choices():
    assert DATASETS == ("demo", "ravdess", "cremad", "mosei", "folder")
    for name in DATASETS:  # data.dataset accepts exactly the registered names
        assert config.DataConfig(dataset=name).dataset == name
    with pytest.raises(ValueError, match="valid choices: 'demo', 'ravdess'"):
        config.DataConfig(dataset="iemocap")


@pytest.mark.parametrize(
    ("name", "n_classes", "n_folds"),
    [("ravdess", 8, 6), ("cremad", 6, 5), ("mosei", 7, 5), ("folder", 0, 5)],
)
def test_get_dataset_returns_the_spec(name, n_classes, n_folds):
    spec = get_dataset(name)
    assert isinstance(spec, DatasetSpec)
    assert spec.name == name
    assert len(spec.classes) == n_classes
    assert len(set(spec.classes)) == n_classes
    assert spec.n_folds == n_folds


def test_unknown_dataset_names_the_key_and_the_choices():
    with pytest.raises(ConfigError) as err:
        get_dataset("iemocap")
    msg = str(err.value)
    assert "data.dataset" in msg and "'iemocap'" in msg
    for name in DATASETS:
        assert name in msg


def test_importing_the_registry_imports_no_dataset_module():
    code = (
        "import sys, aver.datasets as d; "
        "print(sorted(m for m in sys.modules if m.startswith('aver.datasets.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_demo_resolves_once_its_module_exists():
    pytest.importorskip("aver.datasets.demo", reason="aver.datasets.demo is not written yet")
    spec = get_dataset("demo")
    assert spec.name == "demo"

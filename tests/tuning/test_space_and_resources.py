"""Search-space mapping and per-trial resource detection."""

from __future__ import annotations

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

"""The tune stage starts no sweep when train does not read its result (train.use_tuned: false)."""

from __future__ import annotations

import ray

from aver.config import parse_params
from aver.tuning.pipeline import NOT_TUNED, run


def test_no_sweep_when_use_tuned_is_false(tmp_path):
    db = tmp_path / "mlruns.db"
    params = parse_params(
        {
            "cache": {"out": str(tmp_path / "no-cache")},  # a sweep would fail on it
            "train": {"use_tuned": False, "model": {"name": "avtca"}},
            "tune": {"out": str(tmp_path / "tune"), "storage_path": str(tmp_path / "ray")},
            "tracking": {"tracking_uri": f"sqlite:///{db}"},
        }
    )
    run(params)
    marker = tmp_path / "tune" / NOT_TUNED
    assert "train.use_tuned is false" in marker.read_text()
    assert sorted(p.name for p in (tmp_path / "tune").iterdir()) == [NOT_TUNED]
    assert not db.exists()  # no MLflow sweep run
    assert not (tmp_path / "ray").exists()
    assert not ray.is_initialized()


def test_use_tuned_true_needs_the_cache(tmp_path):
    """The gate is the only shortcut: with use_tuned true the stage goes on to the sweep."""
    import pytest

    from aver.errors import DataError

    params = parse_params(
        {
            "cache": {"out": str(tmp_path / "no-cache")},
            "train": {"use_tuned": True},
            "tune": {
                "out": str(tmp_path / "tune"),
                "space": {"train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
            },
        }
    )
    with pytest.raises(DataError, match="feature cache incomplete"):
        run(params)
    assert not (tmp_path / "tune" / NOT_TUNED).exists()

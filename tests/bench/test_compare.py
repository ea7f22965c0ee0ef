"""bench/compare.py: paired statistics on known cases, and its CLI on a tiny cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from scipy import stats

from bench.compare import main, paired_stats, sign_flip_p
from tests.tracking.conftest import tiny_cache, tiny_params  # noqa: F401

A = [0.50, 0.62, 0.55, 0.71, 0.64, 0.58]


def test_identical_configs_differ_by_nothing():
    s = paired_stats(A, A)
    assert s["mean_diff"] == 0.0 and s["std_diff"] == 0.0
    assert s["ci"] == [0.0, 0.0] and s["p_value"] == 1.0
    assert not s["larger_than_noise"]


def test_a_constant_shift_is_detected():
    b = [x + 0.1 for x in A]
    s = paired_stats(A, b)
    assert s["mean_diff"] == pytest.approx(0.1) and s["std_diff"] == pytest.approx(0.0, abs=1e-12)
    assert s["larger_than_noise"]
    assert s["p_value"] == pytest.approx(2 / 2**6)  # only all-plus and all-minus are as extreme
    # a shift with noise: the interval is scipy's paired t interval, and excludes 0
    noise = np.array([0.02, -0.03, 0.01, 0.0, -0.01, 0.03])
    b = np.array(A) + 0.1 + noise
    s = paired_stats(A, b)
    ci = stats.ttest_rel(b, A).confidence_interval(0.95)
    assert s["ci"] == pytest.approx([ci.low, ci.high])
    assert s["mean_diff"] == pytest.approx(0.1 + noise.mean())
    assert s["larger_than_noise"] and s["ci"][0] > 0
    assert s["p_value"] == pytest.approx(2 / 2**6)
    # the same shift buried in noise both ways: not detected
    s = paired_stats(A, np.array(A) + np.array([0.1, -0.1, 0.12, -0.09, 0.08, -0.1]))
    assert not s["larger_than_noise"] and s["ci"][0] < 0 < s["ci"][1]
    assert s["p_value"] > 0.5


def test_sign_flip_p_exact_and_sampled_agree():
    d = np.random.default_rng(1).normal(0.3, 1.0, 16)
    exact = sign_flip_p(d)
    sampled = sign_flip_p(np.concatenate([d, d[:1] * 0]), n_perm=40000)  # 17 pairs: sampled
    assert 0.0 < exact < 1.0 and sampled == pytest.approx(exact, abs=0.03)


def test_one_pair_has_no_interval():
    s = paired_stats([0.5], [0.7])
    assert s["ci"] is None and not s["larger_than_noise"] and s["p_value"] == 1.0


def test_compare_cli_on_a_tiny_cache(tiny_cache, tmp_path, capsys):  # noqa: F811
    raw = tiny_params(tiny_cache, tmp_path, epochs=1).model_dump(mode="json")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "compare.json"
    doc = main(
        [
            "--params",
            str(tmp_path / "params.yaml"),
            "--a",
            "train.lr=0.001",
            "--b",
            "train.model.d_model=8",
            "--seeds",
            "0",
            "1",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "| fold | seed |" in printed and "Larger than the noise" in printed
    assert [(p["fold"], p["seed"]) for p in doc["pairs"]] == [(0, 0), (0, 1)]
    assert doc["split"] == "val" and doc["stats"]["n"] == 2
    diffs = [p["b"]["val_uar"] - p["a"]["val_uar"] for p in doc["pairs"]]
    assert doc["stats"]["mean_diff"] == pytest.approx(np.mean(diffs))
    assert json.loads(out.read_text())["stats"] == json.loads(json.dumps(doc["stats"]))

"""Intervals on known cases: the t interval by hand, the bootstrap against the binomial."""

from __future__ import annotations

import numpy as np
import pytest

from aver.evaluation.intervals import bootstrap_interval, metric_intervals, t_interval


def test_t_interval_of_two_and_three_runs_by_hand():
    # mean 0.7, sd 0.1 (n=3): half-width t(0.975, 2) * 0.1 / sqrt(3) = 4.3027 * 0.057735
    lo, hi = t_interval([0.6, 0.7, 0.8])
    assert (lo, hi) == pytest.approx((0.7 - 0.248414, 0.7 + 0.248414), abs=1e-5)
    # two runs: t(0.975, 1) = 12.706 makes it wide, clipped to the metric's [0, 1]
    assert t_interval([0.6, 0.8]) == (0.0, 1.0)
    assert t_interval([0.5]) is None


def test_bootstrap_of_accuracy_matches_the_binomial_interval():
    # 400 clips, 200 right: accuracy 0.5, normal approximation 0.5 +- 1.96 * sqrt(.25 / 400)
    y_true = np.zeros(400, dtype=int)
    y_pred = np.r_[np.zeros(200, dtype=int), np.ones(200, dtype=int)]
    lo, hi = bootstrap_interval([(y_true, y_pred)], 2, "accuracy", n_boot=2000, seed=1)
    assert lo == pytest.approx(0.451, abs=0.01) and hi == pytest.approx(0.549, abs=0.01)


def test_perfect_predictions_have_a_point_interval_and_more_runs_narrow_it():
    y = np.repeat(np.arange(4), 25)
    perfect = metric_intervals([(y, y), (y, y)], 4, n_boot=200)
    assert perfect["uar"] == {"runs": [1.0, 1.0], "bootstrap": [1.0, 1.0]}
    rng = np.random.default_rng(0)
    noisy = [(y, np.where(rng.random(100) < 0.7, y, (y + 1) % 4)) for _ in range(4)]
    one = bootstrap_interval(noisy[:1], 4, "uar", n_boot=500)
    four = bootstrap_interval(noisy, 4, "uar", n_boot=500)
    assert four[1] - four[0] < 0.7 * (one[1] - one[0])  # ~1/sqrt(4) of the width
    assert metric_intervals(noisy[:1], 4, n_boot=50)["accuracy"]["runs"] is None

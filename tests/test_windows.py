"""The window rule: positions of a clip's windows, the cap, and the per-clip aggregate."""

from __future__ import annotations

import numpy as np
import pytest

from aver.windows import (
    AGGREGATE,
    aggregate_by_clip,
    capped_starts,
    mean_probabilities,
    window_starts,
)


def test_window_starts_cover_the_clip_and_end_at_its_end():
    assert window_starts(3.7, 2.0, 1.0).tolist() == pytest.approx([0.0, 1.0, 1.7])
    assert window_starts(4.0, 2.0, 1.0).tolist() == pytest.approx([0.0, 1.0, 2.0])
    assert window_starts(1.2, 2.0, 1.0).tolist() == [0.0]  # shorter: one padded window
    assert window_starts(2.0, 2.0, 0.5).tolist() == [0.0]
    with pytest.raises(ValueError, match="hop_s"):
        window_starts(3.0, 2.0, 0.0)


def test_capped_starts_take_the_cap_from_the_centre_or_the_start():
    # under the cap: the same windows as predict's
    assert capped_starts(3.7, 2.0, 1.0, 10.0).tolist() == window_starts(3.7, 2.0, 1.0).tolist()
    # over the cap: windows over the middle 4 s of a 10 s clip, or its first 4 s
    assert capped_starts(10.0, 2.0, 1.0, 4.0, "center").tolist() == pytest.approx([3, 4, 5])
    assert capped_starts(10.0, 2.0, 1.0, 4.0, "start").tolist() == pytest.approx([0, 1, 2])
    # cap = window: the one centred window of the cache before whole clips
    assert capped_starts(3.7, 2.0, 1.0, 2.0).tolist() == pytest.approx([0.85])


def test_aggregate_is_the_mean_of_the_window_probabilities():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]], np.float32)
    ids, agg, first = aggregate_by_clip(probs, ["a", "a", "b", "a"])
    assert ids == ["a", "b"] and first.tolist() == [0, 2]
    np.testing.assert_allclose(agg[0], probs[[0, 1, 3]].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(agg[1], [0.5, 0.5])
    np.testing.assert_allclose(mean_probabilities(probs[:2]), [0.55, 0.45])
    assert AGGREGATE == "mean of window probabilities"

"""Failures tables name the user's original media file, not a stage's intermediate."""

from __future__ import annotations

import pandas as pd

from aver.failures import COLUMNS, Failure, source_paths, with_sources, write_failures


def test_failure_rows_name_the_original_file(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    far = tmp_path / "videos" / "b.mov"
    pd.DataFrame(
        {"clip_id": ["a", "b"], "path": ["Actor_01/a.mp4", str(far)], "label": ["x", "y"]}
    ).to_csv(root / "index.csv", index=False)
    failures = [
        Failure("b", "video/b.mp4", "align", "no face"),
        Failure("a", "audio/a.wav", "cache", "too short"),
        Failure("c", "video/c.mp4", "align", "not in the index"),
    ]
    table = tmp_path / "failures.csv"
    write_failures(table, with_sources(failures, source_paths(root)))
    frame = pd.read_csv(table, dtype=str)
    assert list(frame.columns) == COLUMNS
    assert frame.values.tolist() == [
        ["a", f"{root.as_posix()}/Actor_01/a.mp4", "cache", "too short"],
        ["b", far.as_posix(), "align", "no face"],
        ["c", "video/c.mp4", "align", "not in the index"],  # unknown clip: left as it was
    ]


def test_no_index_leaves_paths_alone(tmp_path):
    failures = [Failure("a", "video/a.mp4", "align", "x")]
    assert with_sources(failures, source_paths(tmp_path)) == failures

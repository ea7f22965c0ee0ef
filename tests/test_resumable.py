"""The resumable-stage kernel: settings stamp, reuse of finished items, failures, promotion."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from aver.errors import DataError
from aver.failures import Failure
from aver.resumable import ResumableRun

log = logging.getLogger("tests.resumable")


def _square(path: str) -> int:
    """Job: square the number in the file name, write it to the file, return it."""
    p = Path(path)
    n = int(p.stem)
    p.write_text(str(n * n))
    return n * n


def _done(path: str) -> int | None:
    p = Path(path)
    return int(p.read_text()) if p.is_file() else None


def _run(out: Path, settings: dict, n: int = 4) -> tuple[ResumableRun, list[tuple[str, int]]]:
    stage: ResumableRun[str, int] = ResumableRun(
        "demo", out, settings, dirs=("items",), scratch=("items",), log=log
    )
    jobs = [str(stage.work / "items" / f"{i}.txt") for i in range(n)]
    return stage, stage.results(jobs, _done, _square, verb="squared")


def test_finished_items_are_reused_and_promotion_drops_scratch(tmp_path, caplog):
    out = tmp_path / "out"
    stage, results = _run(out, {"k": 1}, n=2)
    assert [r for _, r in results] == [0, 1] and stage.reused == 0
    assert json.loads((stage.work / "demo-params.json").read_text()) == {"k": 1}
    with caplog.at_level(logging.INFO, logger="tests.resumable"):
        stage, results = _run(out, {"k": 1}, n=4)
    assert [r for _, r in results] == [0, 1, 4, 9] and stage.reused == 2
    assert "resuming: 2 of 4 clips already squared in" in caplog.text
    (stage.work / "result.txt").write_text("kept")
    assert stage.promote() == out
    assert sorted(p.name for p in out.iterdir()) == ["result.txt"]
    assert not stage.work.exists()


def test_changed_settings_start_over(tmp_path, caplog):
    out = tmp_path / "out"
    stage, _ = _run(out, {"k": 1}, n=2)
    (stage.work / "items" / "1.txt").write_text("999")  # a stale result under old settings
    _, again = _run(out, {"k": 1}, n=2)
    assert again[1][1] == 999  # same settings: reused
    with caplog.at_level(logging.INFO, logger="tests.resumable"):
        stage, results = _run(out, {"k": 2}, n=2)
    assert "demo params changed since the interrupted run: starting over" in caplog.text
    assert [r for _, r in results] == [0, 1] and stage.reused == 0


def test_earlier_work_without_a_stamp_is_not_trusted(tmp_path):
    work = tmp_path / "out.partial" / "items"
    work.mkdir(parents=True)
    (work / "1.txt").write_text("999")
    stage, results = _run(tmp_path / "out", {"k": 1}, n=2)
    assert [r for _, r in results] == [0, 1] and stage.reused == 0


def test_failures_are_written_and_too_many_stop_the_stage(tmp_path):
    stage, _ = _run(tmp_path / "out", {}, n=2)
    failures = [Failure("b", "x/b.mp4", "demo", "broken"), Failure("a", "x/a.mp4", "demo", "bad")]
    kept = stage.record_failures(failures, 10, 0.5, {"a": "/data/a.mp4"})
    assert [f.clip_id for f in kept] == ["a", "b"] and kept[0].path == "/data/a.mp4"
    table = pd.read_csv(stage.work / "failures.csv")
    assert list(table["path"]) == ["/data/a.mp4", "x/b.mp4"]
    with pytest.raises(DataError, match="2/3 clips failed"):
        stage.record_failures(failures, 3, 0.5)
    assert stage.work.is_dir()  # the work is kept for a rerun

"""Extraction one file ahead of the scoring, in a thread (fake extractions: the order, the
errors, the overlap and the clean-up are what is tested; real files in test_command.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from aver.predict.ahead import extracted_ahead


class FakeExtracted:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.cleaned = False

    def cleanup(self) -> None:
        self.cleaned = True


def test_files_come_in_order_with_their_errors():
    made: list[FakeExtracted] = []

    def extract(path: Path) -> FakeExtracted:
        if path.name == "bad.mp4":
            raise ValueError("broken")
        made.append(FakeExtracted(path))
        return made[-1]

    files = [Path("a.mp4"), Path("bad.mp4"), Path("c.mp4")]
    got = list(extracted_ahead(files, extract))  # type: ignore[arg-type]
    assert [p for p, _ in got] == files
    assert isinstance(got[1][1], ValueError) and str(got[1][1]) == "broken"
    assert [x.path for _, x in got if isinstance(x, FakeExtracted)] == [files[0], files[2]]
    assert not any(x.cleaned for x in made)  # the consumer cleans what it was given


def test_the_next_file_extracts_while_this_one_is_scored():
    """While the consumer holds file k (scoring it) the thread extracts file k+1, and
    `meanwhile` (the detector build) runs beside the first extraction."""
    started: dict[str, float] = {}

    def extract(path: Path) -> FakeExtracted:
        started[path.name] = time.perf_counter()
        time.sleep(0.2)
        return FakeExtracted(path)

    def meanwhile() -> None:
        started["meanwhile"] = time.perf_counter()
        assert threading.current_thread() is threading.main_thread()

    t0 = time.perf_counter()
    items = extracted_ahead([Path("a"), Path("b")], extract, meanwhile=meanwhile)  # type: ignore[arg-type]
    path, _ = next(items)
    assert path == Path("a") and started["meanwhile"] - t0 < 0.15  # not after the extraction
    time.sleep(0.3)  # "scoring" a: b is extracted meanwhile
    assert "b" in started and started["b"] < time.perf_counter() - 0.1
    before = time.perf_counter()
    assert next(items)[0] == Path("b") and time.perf_counter() - before < 0.1
    with pytest.raises(StopIteration):
        next(items)


def test_an_interrupted_call_removes_what_was_extracted_ahead():
    made: list[FakeExtracted] = []

    def extract(path: Path) -> FakeExtracted:
        made.append(FakeExtracted(path))
        return made[-1]

    items = extracted_ahead([Path(n) for n in "abcd"], extract, ahead=2)  # type: ignore[arg-type]
    first = next(items)[1]
    time.sleep(0.3)  # b, c and d extract while a is scored
    items.close()  # the consumer stops (an error, Ctrl-C)
    assert first is made[0] and not made[0].cleaned  # the consumer's own
    assert [x.path.name for x in made] == ["a", "b", "c", "d"]
    assert all(x.cleaned for x in made[1:])

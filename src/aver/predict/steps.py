"""Seconds spent per step of a prediction: the `aver predict --profile` breakdown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class Steps:
    """Accumulated wall seconds per named step (steps may interleave, as when streaming)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def iterate(self, name: str, items: Iterator[T]) -> Iterator[T]:
        """`items`, with the time spent producing each one counted under `name`."""
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.add(name, time.perf_counter() - start)
                return
            self.add(name, time.perf_counter() - start)
            yield item

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {k: round(v, digits) for k, v in self.seconds.items()}

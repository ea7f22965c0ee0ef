"""Progress for people and machines: one place that makes every progress bar.

On a terminal (stderr is a TTY and `CI` is unset) `bar` is a tqdm bar. Otherwise it writes
plain lines, never carriage returns, to stderr: a line every `AVER_PROGRESS_INTERVAL` seconds
(default 30) and at every 10% of a bar with a known total that stays (`leave=True`), plus a
final line when such a bar closes; a transient bar (`leave=False`, e.g. the batches of one
epoch) prints only the timed lines. `each=True` prints a line at every update (one per epoch).
`AVER_PROGRESS` forces a style: `bar`, `lines` or `off` (default `auto`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

STYLES = ("auto", "bar", "lines", "off")
DEFAULT_INTERVAL_S = 30.0


def style(stream: TextIO | None = None) -> str:
    """`bar`, `lines` or `off`: AVER_PROGRESS if set, else bars on a TTY without `CI`."""
    forced = os.environ.get("AVER_PROGRESS", "auto").strip().lower() or "auto"
    if forced not in STYLES:
        raise ValueError(f"AVER_PROGRESS={forced!r}: use one of {', '.join(STYLES)}")
    if forced != "auto":
        return forced
    stream = stream if stream is not None else sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    return "bar" if tty and not os.environ.get("CI") else "lines"


def interval_s() -> float:
    """Seconds between timed plain lines (AVER_PROGRESS_INTERVAL, default 30)."""
    raw = os.environ.get("AVER_PROGRESS_INTERVAL", "")
    try:
        return float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        raise ValueError(f"AVER_PROGRESS_INTERVAL={raw!r}: give a number of seconds") from None


def _fmt_rate(rate: float, unit: str) -> str:
    return f"{rate:.1f} {unit}/s" if rate < 100 else f"{rate:.0f} {unit}/s"


class PlainBar:
    """tqdm's interface (update, set_postfix, n, total, close, iteration) as plain lines."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        leave: bool = True,
        disable: bool = False,
        each: bool = False,
        file: TextIO | None = None,
        every_s: float | None = None,
    ):
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.leave, self.disable, self.each = initial, leave, disable, each
        self.file = file
        self.every_s = interval_s() if every_s is None else every_s
        self.postfix = ""
        self._start_n = initial
        self._t0 = self._last_t = time.monotonic()
        self._last_decile = self._decile()
        self._printed_n: float | None = None
        self.closed = False

    def _decile(self) -> int:
        return int(10 * self.n / self.total) if self.total else 0

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            return
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> PlainBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The progress line now: desc, count (and %), rate, postfix; with `each`, a report
        "desc unit n/total: postfix" (e.g. "train fold 0 epoch 3/60: loss 1.23 ...")."""
        if self.each:
            count = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
            head = f"{self.desc} " if self.desc else ""
            return f"{head}{self.unit} {count}" + (f": {self.postfix}" if self.postfix else "")
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            count = f"{self.n:g}/{self.total:g} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            count = f"{self.n:g} {self.unit}"
        elapsed = time.monotonic() - self._t0
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{head}{count} {_fmt_rate(rate, self.unit)}{tail}"

    def write(self, text: str) -> None:
        """Print one line (no carriage return)."""
        if self.disable:
            return
        out = self.file if self.file is not None else sys.stderr
        out.write(text.replace("\r", "") + "\n")
        out.flush()

    def _emit(self) -> None:
        self.write(self.line())
        self._printed_n = self.n
        self._last_t = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.disable:
            return
        decile = self._decile()
        now = time.monotonic()
        timed = now - self._last_t >= self.every_s
        if self.each or timed or (self.leave and decile > self._last_decile):
            self._emit()
        self._last_decile = decile

    def set_postfix(
        self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **values: Any
    ) -> None:
        items = {**(ordered_dict or {}), **values}
        self.postfix = " ".join(f"{k} {v}" for k, v in items.items())

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        """Nothing to redraw off a terminal."""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.disable and self.leave and self._printed_n != self.n and self.n:
            self._emit()


Bar = tqdm | PlainBar


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str | None = "",
    unit: str = "it",
    initial: float = 0,
    leave: bool = True,
    disable: bool | None = False,
    each: bool = False,
    **tqdm_kwargs: Any,
) -> Any:
    """A progress bar over `iterable` (or updated by hand): tqdm on a terminal, plain lines
    otherwise (see the module docstring). `disable=None` means enabled (tqdm's "not a TTY"
    test is this function's job). Extra keywords (unit_scale, ...) go to tqdm."""
    chosen = style()
    off = bool(disable) or chosen == "off"
    if chosen == "bar":
        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            leave=leave,
            disable=off,
            **tqdm_kwargs,
        )
    return PlainBar(
        iterable,
        total=total,
        desc=desc or "",
        unit=unit,
        initial=initial,
        leave=leave,
        disable=off,
        each=each,
    )


def track(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """`bar(iterable, ...)` typed as the iterable it wraps."""
    wrapped: Iterable[T] = bar(iterable, **kwargs)
    return wrapped

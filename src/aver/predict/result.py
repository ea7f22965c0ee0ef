"""A prediction: per-window probabilities, the whole-clip headline, JSON and the table.

The headline is the mean of the window probabilities (`AGGREGATE`) over every window that was
scored; a window not scored (no face, and a model that needs one) has no probabilities and
does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aver.windows import AGGREGATE as AGGREGATE  # the one rule (aver.windows)
from aver.windows import mean_probabilities as mean_of

MODALITIES = ("audio", "video")


@dataclass(frozen=True)
class WindowResult:
    """One window [start, end) of the clip (seconds) and what the model made of it."""

    start: float
    end: float
    probs: np.ndarray | None  # (C,); None: not scored
    modalities: tuple[str, ...]  # the inputs it was scored from

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2

    def to_json(self, classes: Sequence[str]) -> dict[str, Any]:
        probs = None if self.probs is None else {c: float(p) for c, p in zip(classes, self.probs)}
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "probabilities": probs,
            "modalities": list(self.modalities),
        }


def scored(windows: Sequence[WindowResult]) -> list[WindowResult]:
    return [w for w in windows if w.probs is not None]


def scored_probabilities(windows: Sequence[WindowResult]) -> np.ndarray:
    """(W, C) probabilities of the scored windows, in time order."""
    return np.stack([w.probs for w in windows if w.probs is not None]).astype(np.float64)


def mean_probabilities(windows: Sequence[WindowResult]) -> np.ndarray:
    """The headline: the mean of the scored windows' probabilities (sums to 1)."""
    return mean_of(scored_probabilities(windows))


def used_modalities(windows: Sequence[WindowResult]) -> tuple[str, ...]:
    seen = {m for w in windows for m in w.modalities}
    return tuple(m for m in MODALITIES if m in seen)


@dataclass
class Prediction:
    video: str
    classes: list[str]
    probs: np.ndarray  # (C,) the headline: AGGREGATE over `windows`
    detection_rate: float
    duration_s: float
    model: str
    timeline_times: np.ndarray | None = None  # (W,) scored window centres, seconds
    timeline_probs: np.ndarray | None = None  # (W, C)
    notes: list[str] = field(default_factory=list)
    windows: list[WindowResult] = field(default_factory=list)
    modalities: tuple[str, ...] = ()
    window_s: float = 0.0

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "video": self.video,
            "prediction": self.label,
            "probabilities": {c: float(p) for c, p in zip(self.classes, self.probs)},
            "aggregate": AGGREGATE,
            "modalities": list(self.modalities),
            "detection_rate": float(self.detection_rate),
            "duration_s": float(self.duration_s),
            "model": self.model,
            "window_s": float(self.window_s),
            "windows": [w.to_json(self.classes) for w in self.windows],
            "notes": list(self.notes),
        }
        if self.timeline_times is not None and self.timeline_probs is not None:
            doc["timeline"] = [
                {"t": round(float(t), 3), **{c: float(p) for c, p in zip(self.classes, row)}}
                for t, row in zip(self.timeline_times, self.timeline_probs)
            ]
        return doc


def format_table(pred: Prediction, bar_width: int = 30) -> str:
    """Readable result: classes by whole-clip probability (top first) with bars, then the
    prediction; the header says how many windows the headline is the mean of."""
    order = np.argsort(-pred.probs, kind="stable")
    width = max(len("class"), *(len(c) for c in pred.classes))
    n = len(scored(pred.windows))
    used = " + ".join(pred.modalities)
    source = f" from {used}" if used else ""
    whole = (
        f"  (whole clip: mean of {n} window{'s' if n != 1 else ''} of {pred.window_s:g} s)"
        if n
        else ""
    )
    face_rate = f", face in {pred.detection_rate:.0%} of frames"
    faces = face_rate if "video" in pred.modalities or not pred.modalities else ""
    lines = [
        f"video: {pred.video} ({pred.duration_s:.2f} s{faces}){source}",
        f"{'class':<{width}}  probability{whole}",
    ]
    for i in order:
        p = float(pred.probs[i])
        bar = "#" * round(p * bar_width)
        lines.append(f"{pred.classes[i]:<{width}}  {p:11.3f}  {bar}")
    lines.append(f"prediction: {pred.label}")
    return "\n".join(lines)

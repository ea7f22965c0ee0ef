"""Every window of a clip, featurised and scored in batches with bounded memory.

Windows of `cache.window_s` start every `aver.inference.TIMELINE_HOP_S` (the last one ends at
the clip's end; `aver.inference.window_starts`). They are taken `BATCH_SIZE` at a time: the
sound of each window is read from the WAV (soundfile, a partial read), the aligned faces come
from a stream (`aver.predict.faces.aligned_faces`) of which only those near the batch are held,
and the arrays are the cache's (`aver.inference.windows_arrays`). A window is scored from the
inputs it has (`aver.predict.modalities`): a missing one is zeros with its mask all False.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from aver.inference import BATCH_SIZE, class_probabilities, windows_arrays
from aver.predict.result import WindowResult
from aver.predict.steps import Steps
from aver.progress import bar as progress_bar

if TYPE_CHECKING:
    from aver.inference import TrainedModel
    from aver.predict.modalities import InputPlan
    from aver.predict.model import InputSettings

MARGIN_S = 1.0  # faces and sound read past a window's ends (nearest-frame lookups, masks)

Face = tuple[float, np.ndarray, bool]  # time, aligned face, detected


class WavReader:
    """Pieces of a mono WAV (channels averaged, float32), read without loading the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.sample_rate = int(sf.info(self.path).samplerate)

    def segment(self, start_s: float, length_s: float) -> tuple[float, np.ndarray]:
        """(start rounded to a sample, the waveform from there for `length_s` or to the end)."""
        first = round(start_s * self.sample_rate)
        with sf.SoundFile(self.path) as f:
            f.seek(min(first, f.frames))
            data = f.read(round(length_s * self.sample_rate), dtype="float32", always_2d=True)
        return first / self.sample_rate, data.mean(axis=1)


class FaceBuffer:
    """The aligned faces of a stream between two times, pulled as needed and dropped after."""

    def __init__(self, stream: Iterator[Face] | None, size: int) -> None:
        self.stream = stream
        self.size = size
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self.detected: list[bool] = []

    def fill_until(self, t: float) -> None:
        while self.stream is not None and (not self.times or self.times[-1] <= t):
            item = next(self.stream, None)
            if item is None:
                self.stream = None
                return
            self.times.append(item[0])
            self.frames.append(item[1])
            self.detected.append(item[2])

    def drop_before(self, t: float) -> None:
        k = bisect.bisect_left(self.times, t)
        del self.times[:k], self.frames[:k], self.detected[:k]

    def _span(self, t0: float, t1: float) -> slice:
        return slice(bisect.bisect_left(self.times, t0), bisect.bisect_left(self.times, t1))

    def faces(self, t0: float, t1: float) -> dict[str, np.ndarray]:
        """{"frames", "times"} of the faces in [t0, t1) (the form clip_features takes)."""
        span = self._span(t0, t1)
        frames = self.frames[span]
        return {
            "frames": np.stack(frames)
            if frames
            else np.zeros((0, self.size, self.size, 3), np.uint8),
            "times": np.asarray(self.times[span], np.float32),
        }

    def detection_rate(self, t0: float, t1: float) -> float:
        found = self.detected[self._span(t0, t1)]
        return float(np.mean(found)) if found else 0.0


@dataclass(frozen=True)
class Sources:
    """Where a clip's inputs come from: its extracted WAV, its aligned-face stream."""

    wav: Path | None
    faces: Iterator[Face] | None
    duration_s: float


def score_windows(
    starts: Sequence[float],
    sources: Sources,
    trained: TrainedModel,
    settings: InputSettings,
    plan: InputPlan,
    steps: Steps,
    *,
    progress: bool = False,
) -> list[WindowResult]:
    """Every window's probabilities (None for a window that cannot be scored)."""
    stream = None if sources.faces is None else steps.iterate("align", sources.faces)
    buffer = FaceBuffer(stream, settings.align.size)
    wav = WavReader(sources.wav) if sources.wav is not None else None
    out: list[WindowResult] = []
    bar = progress_bar(
        total=len(starts), desc="predict", unit="window", disable=None if progress else True
    )
    with bar:
        for i in range(0, len(starts), BATCH_SIZE):
            chunk = [float(s) for s in starts[i : i + BATCH_SIZE]]
            out.extend(_score_chunk(chunk, buffer, wav, sources, trained, settings, plan, steps))
            bar.update(len(chunk))
    return out


def _score_chunk(
    starts: list[float],
    buffer: FaceBuffer,
    wav: WavReader | None,
    sources: Sources,
    trained: TrainedModel,
    settings: InputSettings,
    plan: InputPlan,
    steps: Steps,
) -> list[WindowResult]:
    window = settings.cache.window_s
    t0, t1 = starts[0] - MARGIN_S, starts[-1] + window + MARGIN_S
    buffer.drop_before(t0)
    buffer.fill_until(t1)
    faced = [
        plan.video and buffer.detection_rate(s, s + window) >= settings.align.min_detection_rate
        for s in starts
    ]
    used = [tuple(m for m, ok in (("audio", plan.audio), ("video", f)) if ok) for f in faced]
    keep = [bool(u) and (f or not plan.video or plan.faceless_windows) for u, f in zip(used, faced)]
    with steps.time("features"):
        arrays = _window_arrays(starts, buffer.faces(t0, t1), wav, settings)
        for a, u in zip(arrays, used):
            for modality in ("audio", "video"):
                if modality not in u:
                    a[modality] = np.zeros_like(a[modality])
                    a[f"{modality}_mask"] = np.zeros_like(a[f"{modality}_mask"])
    with steps.time("network"):
        kept = [a for a, k in zip(arrays, keep) if k]
        probs = iter(class_probabilities(trained.model, kept, settings.stats) if kept else [])
    return [
        WindowResult(
            start=s,
            end=min(s + window, sources.duration_s),
            probs=next(probs) if k else None,
            modalities=u if k else (),
        )
        for s, u, k in zip(starts, used, keep)
    ]


def _window_arrays(
    starts: list[float],
    faces: dict[str, np.ndarray],
    wav: WavReader | None,
    settings: InputSettings,
) -> list[dict[str, np.ndarray]]:
    """The cache arrays of windows at `starts` (silence where there is no sound track)."""
    length = settings.cache.window_s + MARGIN_S
    if wav is not None:
        rate = wav.sample_rate
        segments = [wav.segment(s, length) for s in starts]
    else:
        rate = settings.sample_rate
        silence = np.zeros(round(length * rate), np.float32)
        segments = [(round(s * rate) / rate, silence) for s in starts]
    return windows_arrays(
        segments, rate, faces, settings.cache, settings.sample_rate, settings.encoders
    )

"""One video -> a Prediction, through the pipeline's own code, window by window.

The video is probed and converted by the extract stage's `extract_clip` (into a temporary
directory), its faces detected, tracked and aligned as the align stage does (streamed:
`aver.predict.faces`), and every window of the clip featurised as the cache stage does and
scored (`aver.predict.windows`). The headline is the mean of the window probabilities.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aver.errors import DataError
from aver.predict.media import Extracted, check_media, extract_media
from aver.predict.modalities import FACE_FIX, InputPlan, after_tracking, plan_inputs
from aver.predict.result import (
    Prediction,
    mean_probabilities,
    scored,
    scored_probabilities,
    used_modalities,
)
from aver.predict.steps import Steps

if TYPE_CHECKING:
    from aver.inference import TrainedModel
    from aver.predict.model import InputSettings
    from aver.predict.windows import Sources

log = logging.getLogger("aver.predict")


def _say(progress: bool) -> Callable[..., None]:
    """INFO for one file (with its progress bars); DEBUG for many (one line per file)."""
    return log.info if progress else log.debug


def extract_video(
    video: str | Path,
    trained: TrainedModel,
    settings: InputSettings,
    *,
    model_name: str = "",
    steps: Steps | None = None,
    progress: bool = False,
) -> Extracted:
    """Probe `video`, plan its inputs for the model, extract it (the first half of
    `predict_video`; safe to run in a thread beside the scoring of another file)."""
    video = Path(video)
    if not video.is_file():
        raise DataError("file not found", path=video, fix="check the path")
    steps = steps or Steps()
    with steps.time("probe"):
        info = check_media(video)
    plan = plan_inputs(
        trained.card, has_audio=info.audio is not None, has_video=info.video is not None,
        model_name=model_name, path=video,
    )  # fmt: skip
    work = tempfile.TemporaryDirectory(prefix="aver-predict-")
    try:
        _say(progress)("extract: %s", video)
        with steps.time("extract"):
            row = extract_media(
                video, settings.extract, Path(work.name), missing_ok=plan.extract_missing_ok
            )
    except BaseException:
        work.cleanup()
        raise
    return Extracted(video, row, plan, work)


def predict_video(
    video: str | Path,
    trained: TrainedModel,
    settings: InputSettings,
    *,
    timeline: bool = False,
    model_name: str = "",
    steps: Steps | None = None,
    progress: bool = False,
    extracted: Extracted | None = None,
) -> Prediction:
    """Extract, align, featurise and classify every window of one video; the headline is the
    mean of the window probabilities (`timeline`: also the legacy per-window "timeline").
    `extracted`: the video already extracted (`extract_video`; cleaned up here)."""
    steps = steps or Steps()
    if extracted is None:
        extracted = extract_video(
            video, trained, settings, model_name=model_name, steps=steps, progress=progress
        )
    try:
        return _predict_extracted(
            extracted, trained, settings, timeline, model_name, steps, progress
        )
    finally:
        extracted.cleanup()


def _predict_extracted(
    extracted: Extracted,
    trained: TrainedModel,
    settings: InputSettings,
    timeline: bool,
    model_name: str,
    steps: Steps,
    progress: bool,
) -> Prediction:
    from aver.inference import window_starts

    video, row, plan = extracted.video, extracted.row, extracted.plan
    say = _say(progress)
    duration = float(row["duration_s"])
    sources, plan, rate = _sources(row, duration, plan, settings, steps, video, progress)
    window = settings.cache.window_s
    starts = window_starts(duration, window, settings.cache.hop_s)
    say("windows: %d of %.2f s over %.2f s", len(starts), window, duration)
    from aver.predict.windows import score_windows

    windows = score_windows(
        list(starts), sources, trained, settings, plan, steps, progress=progress
    )
    notes = [*settings.notes, *plan.notes, *_window_notes(windows, plan)]
    if not scored(windows):
        raise DataError(
            "no face found in any window of the clip (align.min_detection_rate of its frames)",
            path=video, fix=FACE_FIX,
        )  # fmt: skip
    pred = Prediction(
        video=str(video), classes=list(trained.classes), probs=mean_probabilities(windows),
        detection_rate=rate, duration_s=duration, model=model_name, notes=notes,
        windows=windows, modalities=used_modalities(windows), window_s=settings.cache.window_s,
    )  # fmt: skip
    if timeline:
        pred.timeline_times = np.array([w.centre for w in scored(windows)])
        pred.timeline_probs = scored_probabilities(windows)
    return pred


def _sources(
    row: dict[str, Any],
    duration: float,
    plan: InputPlan,
    settings: InputSettings,
    steps: Steps,
    video: Path,
    progress: bool,
) -> tuple[Sources, InputPlan, float]:
    """The clip's WAV and aligned-face stream as the plan reads them, the plan after the face
    track, and the detection rate (0 without faces)."""
    from aver.predict.faces import aligned_faces, detector, track_clip
    from aver.predict.windows import Sources

    faces = None
    rate = 0.0
    if plan.video:
        mp4 = Path(row["video"])
        with steps.time("detector build"):
            det = detector(settings.align)
        _say(progress)("detect + track: detector %s", settings.align.detector)
        with steps.time("detect + track"):
            clip = track_clip(mp4, settings.align, det, duration_s=duration, progress=progress)
        rate = clip.detection_rate
        plan = after_tracking(plan, rate, clip.n_frames, settings.align, video)
        if plan.video:
            faces = aligned_faces(mp4, settings.align, clip)
    wav = Path(row["audio"]) if plan.audio and row.get("audio") else None
    return Sources(wav=wav, faces=faces, duration_s=duration), plan, rate


def _window_notes(windows: list, plan: InputPlan) -> list[str]:
    """What the windows say: some scored without a face, some not scored."""
    notes = []
    n = len(windows)
    unscored = n - len(scored(windows))
    if plan.video:
        faceless = sum(1 for w in scored(windows) if "video" not in w.modalities)
        if faceless:
            notes.append(f"{faceless} of {n} windows had no face: scored from the voice alone")
    if unscored:
        notes.append(
            f"{unscored} of {n} windows had no face and were not scored (the model needs one)"
        )
    return notes

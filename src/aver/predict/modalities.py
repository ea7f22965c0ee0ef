"""Which inputs a prediction reads: the streams a file has, the ones the model reads and can do
without (`ModelCard.modalities`, `ModelCard.accepts_missing`).

A missing input is scored without (its arrays zero, its mask all False) when the model accepts
it missing: a unimodal model that does not read it, or a fusion model trained with
`train.modality_dropout > 0`. Otherwise the file is refused, naming the model and the fix. The
video is "missing" when the file has no video stream or no face was found in it; a window
without a face in a clip that has one is scored from audio, or left unscored, by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from aver.config import AlignConfig
from aver.errors import DataError
from aver.model_card import ModelCard

RETRAIN_FIX = "retrain with train.modality_dropout > 0 or use video_only"
FACE_FIX = "use a video where one face is visible, frontal and well lit most of the time"


@dataclass(frozen=True)
class InputPlan:
    """What to read: the sound track, the faces; whether faceless windows are scored (audio)."""

    audio: bool
    video: bool
    faceless_windows: bool  # windows without a face are scored from audio alone
    notes: tuple[str, ...] = ()

    @property
    def extract_missing_ok(self) -> bool:
        return not (self.audio and self.video)


def model_label(card: ModelCard, model_name: str) -> str:
    name = card.model.get("name", "msan")
    return f"model {model_name} ({name})" if model_name else f"the {name} model"


def plan_inputs(
    card: ModelCard, *, has_audio: bool, has_video: bool, model_name: str, path: str | Path
) -> InputPlan:
    """The plan for a file with these streams; DataError when the model needs a missing one."""
    reads = card.modalities()
    label = model_label(card, model_name)
    notes: list[str] = []
    if not has_audio:
        if not card.accepts_missing("audio"):
            raise DataError(
                f"no audio track: {label} needs the voice (it was not trained to score without it)",
                path=path,
                fix=f"pass the video with its sound track, or {RETRAIN_FIX}"
                if "video" in reads
                else "pass a file with a sound track",
            )
        if "audio" in reads:
            notes.append("no audio track: scored from the face alone")
    if not has_video:
        if not card.accepts_missing("video"):
            raise DataError(
                f"no video stream: {label} reads faces",
                path=path,
                fix="pass a video with a visible face, or use an audio model (audio_only, or a "
                "fusion model trained with train.modality_dropout > 0)",
            )
        if "video" in reads:
            notes.append("no video stream: scored from the voice alone")
    return InputPlan(
        audio=has_audio and "audio" in reads,
        video=has_video and "video" in reads,
        faceless_windows=card.accepts_missing("video") and "audio" in reads and has_audio,
        notes=tuple(notes),
    )


def after_tracking(
    plan: InputPlan, rate: float, n_frames: int, cfg: AlignConfig, path: str | Path
) -> InputPlan:
    """The plan once the face track is known: below `align.min_detection_rate` the clip has no
    usable face; scored from audio alone when the model can, else refused (the align rule)."""
    if rate >= cfg.min_detection_rate:
        return plan
    found = (
        f"a face was detected in {rate:.0%} of {n_frames} sampled frames "
        f"(the model needs at least {cfg.min_detection_rate:.0%}, align.min_detection_rate)"
    )
    if not plan.faceless_windows:
        raise DataError(f"no face found: {found}", path=path, fix=FACE_FIX)
    note = f"no face found ({found}): scored from the voice alone"
    return replace(plan, video=False, notes=(*plan.notes, note))

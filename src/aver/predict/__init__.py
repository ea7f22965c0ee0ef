"""`aver predict VIDEO`: emotion probabilities for a new video, through the pipeline's own code.

The video goes through the functions the stages run: `aver.media.extract.extract_clip` (into a
temporary directory), the align stage's detect-track-align (`aver.predict.faces`, streamed), and
the cache stage's window features (`aver.inference.windows_arrays`), then the trained network.
Every setting that shapes the input comes from the model file's card (`aver.predict.model`).

Whole clip: windows of `cache.window_s` slide over the whole clip every
`aver.inference.TIMELINE_HOP_S` (1 s; the last window ends at the clip's end, a clip shorter
than the window is one padded window). Each window gets the model's probabilities; the headline
is the **mean of the window probabilities** over the windows scored (JSON: `aggregate`), and
the JSON lists every window (`windows`: start, end, probabilities, modalities). Long videos are
processed window by window with bounded memory (`aver.predict.windows`).

Missing inputs (`aver.predict.modalities`): a file without a sound track, a clip or a window
without a face, is scored from the input that is there when the model can do without the other
(a unimodal model, or a fusion model trained with `train.modality_dropout > 0`); JSON
`modalities` and `notes` say what was used. Otherwise it is refused with the reason.

Many files per call (`aver predict a.mp4 b.mp4 DIR --output results.csv`): the model and the
detector are built once, the next file is extracted while one is scored, and each file gives
one row (its error when it fails; the others go on).

Modules (imported on first use): model (loading, input settings), modalities (what is read),
faces (streamed detect-track-align), windows (batched window scoring), result (Prediction,
JSON, table), media (probe and extract one file; no torch), early (the first file extracted
while torch loads), pipeline (`extract_video`, `predict_video`), batch (the files of a call,
rows, CSV/JSONL), ahead (extraction beside the scoring), command (`aver predict`), steps (the
`--profile` timings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aver.lazy import lazy_exports

# name -> module; imported on first use, so `aver.predict.media` and `aver.predict.early` load
# without torch (the `aver predict` command starts extracting before torch is imported)
_EXPORTS = {
    "main": "command", "one_line": "command", "run": "command",
    "DEFAULT_MODEL": "model", "InputSettings": "model", "card_encoders": "model",
    "download_model": "model", "input_settings": "model", "is_model_uri": "model",
    "load_model": "model",
    "check_media": "media", "extract_media": "media", "media_error": "media",
    "predict_video": "pipeline",
    "AGGREGATE": "result", "Prediction": "result", "WindowResult": "result",
    "format_table": "result",
}  # fmt: skip

if TYPE_CHECKING:
    from aver.predict.command import main, one_line, run
    from aver.predict.media import check_media, extract_media, media_error
    from aver.predict.model import (
        DEFAULT_MODEL,
        InputSettings,
        card_encoders,
        download_model,
        input_settings,
        is_model_uri,
        load_model,
    )
    from aver.predict.pipeline import predict_video
    from aver.predict.result import AGGREGATE, Prediction, WindowResult, format_table


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AGGREGATE",
    "DEFAULT_MODEL",
    "InputSettings",
    "Prediction",
    "WindowResult",
    "card_encoders",
    "check_media",
    "download_model",
    "extract_media",
    "format_table",
    "input_settings",
    "is_model_uri",
    "load_model",
    "main",
    "media_error",
    "one_line",
    "predict_video",
    "run",
]

"""`aver predict VIDEO`: load the model, predict, print the table or JSON, plot the timeline."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from aver.errors import AverError, DataError
from aver.predict.model import (
    DEFAULT_MODEL,
    input_settings,
    is_model_uri,
    load_model,
    tracking_config,
)
from aver.predict.pipeline import check_media, predict_video
from aver.predict.result import Prediction, format_table
from aver.predict.steps import Steps
from aver.redact import install_log_redaction

log = logging.getLogger("aver.predict")


def one_line(err: AverError) -> str:
    """The error as one line (the AverError text puts its fix on a second line)."""
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip())


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere): the interpreter and
    the imports before `main` ran."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run(args: argparse.Namespace, steps: Steps | None = None) -> Prediction:
    """Load the model, predict, write the timeline; returns the prediction."""
    steps = steps or Steps()
    video = Path(args.video)
    if not video.is_file():  # fail before loading anything
        raise DataError("file not found", path=video, fix="check the path")
    with steps.time("probe"):
        check_media(video)
    spec = args.model or DEFAULT_MODEL
    with steps.time("import"):  # torch, the detector and feature code
        import aver.faces.pipeline
        import aver.features
        import aver.inference  # noqa: F401
    with steps.time("model load"):
        tracking = tracking_config(args.params) if is_model_uri(spec) else None
        trained = load_model(spec, tracking)
        weights = getattr(args, "encoder_weights", None)
        settings = input_settings(trained, args.params, encoder_weights=weights)
    for note in settings.notes:
        log.warning("model file lacks some settings: %s", note)
    pred = predict_video(
        video, trained, settings, timeline=bool(args.timeline), model_name=spec, steps=steps,
        progress=True,
    )  # fmt: skip
    for note in pred.notes:
        if note not in settings.notes:
            log.warning("%s", note)
    if args.timeline:
        from aver.predict_plot import timeline_png

        assert pred.timeline_times is not None and pred.timeline_probs is not None
        timeline_png(
            pred.timeline_times,
            pred.timeline_probs,
            pred.classes,
            args.timeline,
            window_s=settings.cache.window_s,
            duration_s=pred.duration_s,
            title=f"{video.name}: {pred.label} (whole clip)",
        )
        log.info("timeline -> %s", args.timeline)
    return pred


def main(args: argparse.Namespace) -> None:
    """`aver predict`: results on stdout (table or JSON), progress and errors on stderr."""
    logging.basicConfig(level=logging.INFO, format="[predict] %(message)s", stream=sys.stderr)
    install_log_redaction()
    steps = Steps()
    age = process_age_s()
    if age is not None:
        steps.add("start-up", age)  # the interpreter, aver and torch imports
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the result only
            pred = run(args, steps)
    except AverError as err:
        print(f"aver predict: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("aver predict: interrupted", file=sys.stderr)
        sys.exit(130)
    if getattr(args, "profile", False):
        print(f"[predict] profile: {json.dumps(steps.rounded())}", file=sys.stderr)
    if args.json:
        print(json.dumps(pred.to_json(), indent=2))
    else:
        print(format_table(pred))

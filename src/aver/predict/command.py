"""`aver predict VIDEO...`: load the model once, predict, print the table or JSON, plot the
timeline; several files (or a directory): one row per file, `--output` CSV/JSONL."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from aver.errors import AverError, ConfigError, DataError
from aver.predict.ahead import extracted_ahead
from aver.predict.batch import (
    RowWriter,
    failed_row,
    media_files,
    output_format,
    prediction_row,
)
from aver.predict.early import EarlyExtraction
from aver.predict.media import Extracted, check_media
from aver.predict.modalities import plan_inputs
from aver.predict.model import (
    DEFAULT_MODEL,
    InputSettings,
    input_settings,
    is_model_uri,
    load_model,
    tracking_config,
)
from aver.predict.pipeline import extract_video, predict_video
from aver.predict.result import Prediction, format_table
from aver.predict.steps import Steps
from aver.progress import bar as progress_bar
from aver.progress import style as progress_style
from aver.redact import install_log_redaction

if TYPE_CHECKING:
    from aver.inference import TrainedModel

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


def videos_of(args: argparse.Namespace) -> list[str]:
    """The VIDEO arguments as a list (`args.video`: one path or several)."""
    given = args.video
    return [str(given)] if isinstance(given, (str, Path)) else [str(v) for v in given or []]


def is_batch(args: argparse.Namespace) -> bool:
    """Several files, a directory or `--output`: one row per file; else today's single file."""
    videos = videos_of(args)
    return len(videos) != 1 or Path(videos[0]).is_dir() or bool(getattr(args, "output", None))


def load(
    args: argparse.Namespace, steps: Steps, *, extracting_beside: bool = False
) -> tuple[TrainedModel, InputSettings, str]:
    """The model (file or MLflow URI) and its input settings, loaded once per call; torch's
    threads set by the thread policy (`extracting_beside`: one core left to the ffmpeg
    extraction of the next file, which runs while this process scores)."""
    from aver.threads import apply, available_cores

    cores = available_cores()
    apply(cores=max(1, cores - 1) if extracting_beside else cores)
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
    return trained, settings, spec


def run(
    args: argparse.Namespace, steps: Steps | None = None, early: EarlyExtraction | None = None
) -> Prediction:
    """One video: load the model, predict, write the timeline; returns the prediction.
    `early`: the file's extraction started before torch was imported (used when it matches)."""
    steps = steps or Steps()
    video = Path(videos_of(args)[0])
    if not video.is_file():  # fail before loading anything
        raise DataError("file not found", path=video, fix="check the path")
    info = early.probed() if early is not None else None
    if info is None:
        with steps.time("probe"):
            info = check_media(video)
    trained, settings, spec = load(args, steps)
    # a file the model refuses (no sound track, ...) fails before the detector is built
    plan = plan_inputs(
        trained.card, has_audio=info.audio is not None, has_video=info.video is not None,
        model_name=spec, path=video,
    )  # fmt: skip
    extract = partial(
        extract_video, trained=trained, settings=settings, model_name=spec, steps=steps,
        progress=True,
    )  # fmt: skip
    build = _detector_build(trained, settings, steps) if plan.video else None
    ready = early.take(settings.extract, plan, steps) if early is not None else None
    if ready is not None:
        if build is not None:
            build()
        extracted: Extracted | Exception = ready
    else:
        ((_, extracted),) = extracted_ahead([video], extract, meanwhile=build)
    if isinstance(extracted, Exception):
        raise extracted
    pred = predict_video(
        video, trained, settings, timeline=bool(args.timeline), model_name=spec, steps=steps,
        progress=True, extracted=extracted,
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


def run_many(args: argparse.Namespace, out: TextIO, steps: Steps | None = None) -> int:
    """Every file of the command line (directories expanded): one row each on `out` (a line of
    the table, or JSON with `--json`) and in `--output`; a file that fails is recorded with its
    error and the rest go on. Returns the number of files that failed."""
    steps = steps or Steps()
    if args.timeline:
        raise ConfigError(
            "--timeline draws one video's windows", fix="pass one video with --timeline"
        )
    target = getattr(args, "output", None)
    if target:
        output_format(target)  # a bad name fails before the model loads
    files = media_files(videos_of(args), recursive=bool(getattr(args, "recursive", False)))
    trained, settings, spec = load(args, steps, extracting_beside=len(files) > 1)
    failed = 0
    extract = partial(
        extract_video, trained=trained, settings=settings, model_name=spec, steps=steps
    )
    build = _detector_build(trained, settings, steps)
    shown = progress_style()  # a bar on a terminal, else one line per file (aver.progress)
    bar = progress_bar(total=len(files), desc="predict", unit="file", disable=shown != "bar")
    start = time.perf_counter()
    with RowWriter(target, trained.classes) as writer, bar:
        for k, (video, extracted) in enumerate(extracted_ahead(files, extract, meanwhile=build), 1):
            row = _score_file(video, extracted, trained, settings, spec, steps)
            failed += bool(row["error"])
            writer.write(row)
            text = json.dumps(row) if args.json else format_row(row)
            if shown == "bar":
                bar.write(text, file=out)  # above the bar
            else:
                print(text, file=out)
            out.flush()
            bar.update(1)
            if shown == "lines":
                took, start = time.perf_counter() - start, time.perf_counter()
                log.info("%d/%d %s (%.2f s)", k, len(files), format_row(row), took)
    if target:
        log.info("%d rows -> %s", len(files), target)
    return failed


def _detector_build(
    trained: TrainedModel, settings: InputSettings, steps: Steps
) -> Callable[[], object] | None:
    """The face detector's construction, for a model that reads faces (None otherwise)."""
    if "video" not in trained.card.modalities():
        return None

    def build() -> None:
        from aver.predict.faces import detector

        with steps.time("detector build"):
            detector(settings.align)

    return build


def _score_file(
    video: Path,
    extracted: Extracted | Exception,
    trained: TrainedModel,
    settings: InputSettings,
    spec: str,
    steps: Steps,
) -> dict[str, Any]:
    """The row of one file; its error recorded (one line) when it cannot be scored."""
    try:
        if isinstance(extracted, Exception):
            raise extracted
        pred = predict_video(
            video, trained, settings, model_name=spec, steps=steps, extracted=extracted
        )
    except AverError as err:
        return failed_row(video, one_line(err))
    except Exception as err:  # a file the decoders choke on must not end the other files
        log.debug("%s failed", video, exc_info=True)
        return failed_row(video, f"{type(err).__name__}: {str(err)[:300]}")
    return prediction_row(pred)


def format_row(row: dict[str, Any]) -> str:
    """One file's result on a line: path, label and its probability, windows and inputs."""
    if row["error"]:
        error = row["error"].removeprefix(f"{row['path']}: ")  # AverError text names the file
        return f"{row['path']}: error: {error}"
    p = row["probabilities"][row["label"]]
    n = row["n_windows"]
    used = "+".join(row["modalities"])
    return f"{row['path']}: {row['label']} ({p:.3f}; {n} window{'s' if n != 1 else ''}, {used})"


def main(args: argparse.Namespace, early: EarlyExtraction | None = None) -> None:
    """`aver predict`: results on stdout (table or JSON; one row per file for several files),
    progress and errors on stderr; exit 1 when a file failed. `early`: one file's extraction
    started before the imports (`start_early`)."""
    logging.basicConfig(level=logging.INFO, format="[predict] %(message)s", stream=sys.stderr)
    install_log_redaction()
    steps = Steps()
    age = process_age_s()
    if age is not None:
        steps.add("start-up", age)  # the interpreter, aver and torch imports
    out = sys.stdout
    failed, batch = 0, is_batch(args)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the result only
            if batch:
                failed = run_many(args, out, steps)
            else:
                pred = run(args, steps, early)
    except AverError as err:
        print(f"aver predict: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("aver predict: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if early is not None:
            early.discard()
    if getattr(args, "profile", False):
        print(f"[predict] profile: {json.dumps(steps.rounded())}", file=sys.stderr)
    if batch:
        if failed:
            print(f"aver predict: error: {failed} file(s) could not be scored", file=sys.stderr)
            sys.exit(1)
        return
    if args.json:
        print(json.dumps(pred.to_json(), indent=2))
    else:
        print(format_table(pred))


def main_and_exit(args: argparse.Namespace, early: EarlyExtraction | None = None) -> NoReturn:
    """`main`, then end the process at once with its exit code, output flushed: the console
    script skips the interpreter's teardown of torch (about 1 s, longer than a short clip's
    scoring). Only for a process that exists to run `aver predict`."""
    code: int = 0
    try:
        main(args, early)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)

"""`aver predict VIDEO`: emotion probabilities for one new video, through the pipeline's own code.

The video goes through the same functions the stages run: `aver.media.extract.extract_clip`
(into a temporary directory), `aver.faces.pipeline.align_clip`, `aver.features.clip_features`
and `aver.features.batch_from_arrays`, then the trained network. Every setting that shapes the
input (extract, align and cache params, the audio sample rate, the fold's normalisation stats)
comes from the model file's card (aver.model_card), so a model keeps working after params.yaml
changes. params.yaml (`--params`) is read only for what a model file does not hold: the MLflow
tracking store used to resolve `models:/...` and `runs:/...` URIs, and, for model files written
before the cache metadata was stored, the cache directory holding the normalisation statistics.

The clip-level prediction uses the cache window (`cache.window_s`, `cache.crop`) exactly as in
training and evaluation; `--timeline` slides that window over the whole video with a 1 s hop
(aver.inference: window slicing, batching, softmax).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aver.config import AlignConfig, CacheConfig, ExtractConfig, Params, TrackingConfig
from aver.errors import AverError, DataError
from aver.redact import install_log_redaction, redact_uri

if TYPE_CHECKING:
    from aver.encoders.loading import Encoders
    from aver.faces.pipeline import AlignedClip
    from aver.features.stats import FoldStats
    from aver.inference import TrainedModel
    from aver.media.probe import MediaError
    from aver.model_card import ModelCard

log = logging.getLogger("aver.predict")

DEFAULT_MODEL = "models/model.pt"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # models:/, runs:/, s3://, ... (not C:\)
VIDEO_FIX = "pass a playable video file (mp4, avi, mkv, flv, ...) with a sound track"


# ---- model ----------------------------------------------------------------------------------


def is_model_uri(spec: str) -> bool:
    """True for MLflow URIs (models:/..., runs:/..., s3://...), False for file paths."""
    return bool(_URI.match(spec)) and not Path(spec).exists()


def load_model(spec: str | None, tracking: TrackingConfig | None = None) -> TrainedModel:
    """The trained model from a model.pt path (default models/model.pt) or an MLflow URI."""
    from aver.inference import load_trained_model, resolve_device

    device = resolve_device("auto")
    spec = spec or DEFAULT_MODEL
    if not is_model_uri(spec):
        path = Path(spec)
        if not path.is_file():
            fix = (
                "run the pipeline first (dvc repro) or pass --model PATH|models:/NAME@champion"
                if spec == DEFAULT_MODEL
                else "check the path, or pass an MLflow URI such as models:/aver-demo@champion"
            )
            raise DataError("model file not found", path=path, fix=fix)
        return load_trained_model(path, device=device)
    with tempfile.TemporaryDirectory(prefix="aver-predict-model-") as tmp:
        model_file = download_model(spec, tracking or TrackingConfig(), Path(tmp))
        return load_trained_model(model_file, device=device)


def download_model(uri: str, tracking: TrackingConfig, dst: Path) -> Path:
    """model.pt of a logged aver model, fetched from the tracking store (URI precedence of
    aver.tracking.runs: $MLFLOW_TRACKING_URI > tracking.tracking_uri > sqlite:///mlruns.db)."""
    from aver.tracking.registry import download_model_file
    from aver.tracking.runs import absolute_uri, connect, tracking_uri, use_store

    store = connect(absolute_uri(tracking_uri(tracking)))
    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///") :]).is_file():
        raise DataError(
            f"cannot resolve {uri}: no MLflow store at {store}",
            fix="run from the repository root (where mlruns.db is) or set MLFLOW_TRACKING_URI",
        )
    use_store(store)
    log.info("downloading %s from %s", uri, redact_uri(store))
    try:
        return download_model_file(uri, dst)
    except AverError as err:
        raise DataError(str(err).split("\nFix:")[0], fix=err.fix) from None
    except Exception as err:  # MLflow raises several types for unknown names, runs and stores
        raise DataError(
            f"cannot download model {uri} from {store} ({type(err).__name__}: {str(err)[:300]})",
            fix="check the URI (models:/<name>@champion, runs:/<run_id>/model) and the store",
        ) from None


@dataclass(frozen=True)
class InputSettings:
    """Everything that turns a video into model input, as stored with the model."""

    extract: ExtractConfig
    align: AlignConfig
    cache: CacheConfig
    sample_rate: int
    stats: FoldStats
    notes: tuple[str, ...] = ()  # what came from params.yaml instead of the model file
    encoders: Encoders | None = None  # the pretrained encoders the model's inputs need


def input_settings(
    trained: TrainedModel,
    params_path: str | Path = "params.yaml",
    *,
    encoder_weights: str | None = None,
) -> InputSettings:
    """Training-time extract/align/cache settings, fold stats and encoders from the model card.

    Only model files written before the card may lack some (said in `notes`): the stats then
    come from the stats.json of params.yaml's cache directory. A model trained on pretrained
    encoders gets the same encoders (weights from `encoder_weights`, else where training found
    them, else the torch hub cache), and is refused when their weights differ.
    """
    card = trained.card
    notes = [n for n in card.provenance.notes if n != "no normalisation stats stored"]
    stats = card.fold_stats()
    if stats is None:
        fold = int(card.run.get("fold", 0))
        stats = _fallback_stats(params_path, fold)
        notes.append(f"normalisation stats of fold {fold} from {params_path}")
    cache = card.section("cache")
    return InputSettings(
        extract=card.section("extract"),
        align=card.section("align"),
        cache=cache,
        sample_rate=card.input.sample_rate,
        stats=stats,
        notes=tuple(notes),
        encoders=card_encoders(card, cache, encoder_weights),
    )


def card_encoders(
    card: ModelCard, cache: CacheConfig, encoder_weights: str | None = None
) -> Encoders | None:
    """The pretrained encoders a model's card names, loaded and checked against the card (name,
    weights sha256, layers); None for a model on log-mel/MFCC and face crops."""
    if not (cache.pretrained_audio or cache.pretrained_face):
        return None
    from aver.encoders.loading import check_same_encoders, load_encoders

    if encoder_weights:
        cache = cache.model_copy(update={"encoder_weights": encoder_weights})
    encoders = load_encoders(cache, "auto")
    check_same_encoders(card.encoder.records(), encoders.identity(), source="the model's card")
    return encoders


def _load_params(params_path: str | Path) -> Params:
    """params.yaml resolved as the stages resolve it (tuned values: train only, not needed)."""
    from aver.config import load_params
    from aver.resolution import resolve

    return resolve(load_params(params_path), Path(params_path).parent, tuned=False).params


def _fallback_stats(params_path: str | Path, fold: int) -> FoldStats:
    from aver.features.cache import FeatureCache

    cache_dir = _load_params(params_path).cache.out
    return FeatureCache(cache_dir).fold_stats(fold)


# ---- media -> faces -> arrays -----------------------------------------------------------------


def extract_media(video: Path, cfg: ExtractConfig, work: Path) -> dict[str, Any]:
    """Run the extract stage's conversion on `video` into `work`; its manifest row."""
    from aver.media.extract import ExtractError, extract_clip
    from aver.media.probe import MediaError

    try:
        return extract_clip(video, work / "audio.wav", work / "video.mp4", cfg)
    except MediaError as err:
        raise media_error(err, video, cfg.min_duration_s) from None
    except ExtractError as err:
        raise DataError(err.detail, path=video, fix=VIDEO_FIX) from None


def check_media(video: Path) -> None:
    """Probe `video` (aver.media.probe) so unusable input fails before the model loads."""
    from aver.media.probe import MediaError, probe

    try:
        probe(video)
    except MediaError as err:
        raise media_error(err, video) from None


def media_error(err: MediaError, video: Path, min_duration_s: float = 0.0) -> DataError:
    """A MediaError restated for `aver predict` (the pipeline's fix mentions failures.csv)."""
    from aver.media.probe import Unusable

    fixes = {
        Unusable.MISSING: "check the path",
        Unusable.NO_AUDIO: "the model needs the voice: pass the video with its sound track",
        Unusable.NO_VIDEO: "the model needs the face: pass a video, not an audio file",
        Unusable.TOO_SHORT: f"pass a clip of at least {min_duration_s:g} s",
    }
    return DataError(err.short, path=video, fix=fixes.get(err.reason, VIDEO_FIX))


def align_faces(mp4: Path, cfg: AlignConfig, video: Path) -> AlignedClip:
    """The align stage's detect-track-align on the extracted video; DataError without a face."""
    from aver.faces.detectors import make_detector
    from aver.faces.pipeline import align_clip

    try:
        clip = align_clip(mp4, cfg, make_detector(cfg))
    except DataError as err:
        first = str(err).splitlines()[0]
        detail = first.removeprefix(f"{err.path}: ") if err.path else first
        raise DataError(f"cannot read its frames ({detail})", path=video, fix=VIDEO_FIX) from None
    if clip.arrays is None:
        raise DataError(
            f"no face found: a face was detected in {clip.detection_rate:.0%} of "
            f"{clip.n_frames} sampled frames (the model needs at least "
            f"{cfg.min_detection_rate:.0%}, align.min_detection_rate)",
            path=video,
            fix="use a video where one face is visible, frontal and well lit most of the time",
        )
    return clip


@dataclass
class Prediction:
    video: str
    classes: list[str]
    probs: np.ndarray  # (C,)
    detection_rate: float
    duration_s: float
    model: str
    timeline_times: np.ndarray | None = None  # (W,) window centres, seconds
    timeline_probs: np.ndarray | None = None  # (W, C)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "video": self.video,
            "prediction": self.label,
            "probabilities": {c: float(p) for c, p in zip(self.classes, self.probs)},
            "detection_rate": float(self.detection_rate),
            "duration_s": float(self.duration_s),
            "model": self.model,
        }
        if self.timeline_times is not None and self.timeline_probs is not None:
            doc["timeline"] = [
                {"t": round(float(t), 3), **{c: float(p) for c, p in zip(self.classes, row)}}
                for t, row in zip(self.timeline_times, self.timeline_probs)
            ]
        return doc


def predict_video(
    video: str | Path,
    trained: TrainedModel,
    settings: InputSettings,
    *,
    timeline: bool = False,
    model_name: str = "",
) -> Prediction:
    """Extract, align, featurise and classify one video (optionally per-second windows)."""
    from aver.features import clip_features
    from aver.features.audio import load_wav
    from aver.inference import class_probabilities, window_arrays, window_starts

    video = Path(video)
    if not video.is_file():
        raise DataError("file not found", path=video, fix="check the path")
    with tempfile.TemporaryDirectory(prefix="aver-predict-") as tmp:
        work = Path(tmp)
        log.info("extract: %s", video)
        row = extract_media(video, settings.extract, work)
        log.info("align: %.2f s, detector %s", row["duration_s"], settings.align.detector)
        clip = align_faces(work / "video.mp4", settings.align, video)
        assert clip.arrays is not None
        wave, sr = load_wav(work / "audio.wav")
    faces = clip.arrays
    arrays = clip_features(
        wave, faces, settings.cache, sample_rate=sr, target_rate=settings.sample_rate,
        encoders=settings.encoders,
    )  # fmt: skip
    probs = class_probabilities(trained.model, [arrays], settings.stats)[0]
    pred = Prediction(
        video=str(video),
        classes=list(trained.classes),
        probs=probs,
        detection_rate=float(clip.detection_rate),
        duration_s=float(row["duration_s"]),
        model=model_name,
        notes=list(settings.notes),
    )
    if timeline:
        window = settings.cache.window_s
        starts = window_starts(pred.duration_s, window)
        log.info("timeline: %d windows of %.2f s", len(starts), window)
        windows = [
            window_arrays(
                wave, sr, faces, s, settings.cache, settings.sample_rate, settings.encoders
            )
            for s in starts
        ]
        pred.timeline_probs = class_probabilities(trained.model, windows, settings.stats)
        pred.timeline_times = starts + min(window, pred.duration_s) / 2
    return pred


# ---- output ---------------------------------------------------------------------------------


def format_table(pred: Prediction, bar_width: int = 30) -> str:
    """Readable result: classes by probability (top first) with bars, then the prediction."""
    order = np.argsort(-pred.probs, kind="stable")
    width = max(len("class"), *(len(c) for c in pred.classes))
    lines = [
        f"video: {pred.video} ({pred.duration_s:.2f} s, face in {pred.detection_rate:.0%} "
        "of frames)",
        f"{'class':<{width}}  probability",
    ]
    for i in order:
        p = float(pred.probs[i])
        bar = "#" * round(p * bar_width)
        lines.append(f"{pred.classes[i]:<{width}}  {p:11.3f}  {bar}")
    lines.append(f"prediction: {pred.label}")
    return "\n".join(lines)


def one_line(err: AverError) -> str:
    """The error as one line (the AverError text puts its fix on a second line)."""
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip())


def _tracking_config(params_path: str | Path) -> TrackingConfig:
    """params.yaml's tracking section when the file exists, else the defaults."""
    if not Path(params_path).is_file():
        return TrackingConfig()
    return _load_params(params_path).tracking


def run(args: argparse.Namespace) -> Prediction:
    """Load the model, predict, write the timeline; returns the prediction."""
    video = Path(args.video)
    if not video.is_file():  # fail before loading anything
        raise DataError("file not found", path=video, fix="check the path")
    check_media(video)
    spec = args.model or DEFAULT_MODEL
    tracking = _tracking_config(args.params) if is_model_uri(spec) else None
    trained = load_model(spec, tracking)
    weights = getattr(args, "encoder_weights", None)
    settings = input_settings(trained, args.params, encoder_weights=weights)
    for note in settings.notes:
        log.warning("model file lacks some settings: %s", note)
    pred = predict_video(video, trained, settings, timeline=bool(args.timeline), model_name=spec)
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
            title=f"{video.name}: {pred.label}",
        )
        log.info("timeline -> %s", args.timeline)
    return pred


def main(args: argparse.Namespace) -> None:
    """`aver predict`: results on stdout (table or JSON), progress and errors on stderr."""
    import json

    logging.basicConfig(level=logging.INFO, format="[predict] %(message)s", stream=sys.stderr)
    install_log_redaction()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the result only
            pred = run(args)
    except AverError as err:
        print(f"aver predict: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("aver predict: interrupted", file=sys.stderr)
        sys.exit(130)
    if args.json:
        print(json.dumps(pred.to_json(), indent=2))
    else:
        print(format_table(pred))

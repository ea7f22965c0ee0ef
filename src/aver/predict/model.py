"""The trained model `aver predict` runs and the input settings stored with it.

Every setting that shapes the input (extract, align and cache params, the audio sample rate,
the fold's normalisation stats, the pretrained encoders) comes from the model file's card
(aver.model_card), so a model keeps working after params.yaml changes. params.yaml is read only
for what a model file does not hold: the MLflow tracking store used to resolve `models:/...`
and `runs:/...` URIs, and, for model files written before the cache metadata was stored, the
cache directory holding the normalisation statistics.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aver.config import AlignConfig, CacheConfig, ExtractConfig, Params, TrackingConfig
from aver.errors import AverError, DataError
from aver.redact import redact_uri

if TYPE_CHECKING:
    from aver.encoders.loading import Encoders
    from aver.features.stats import FoldStats
    from aver.inference import TrainedModel
    from aver.model_card import ModelCard

log = logging.getLogger("aver.predict")

DEFAULT_MODEL = "models/model.pt"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # models:/, runs:/, s3://, ... (not C:\)


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


def tracking_config(params_path: str | Path) -> TrackingConfig:
    """params.yaml's tracking section when the file exists, else the defaults."""
    if not Path(params_path).is_file():
        return TrackingConfig()
    return _load_params(params_path).tracking

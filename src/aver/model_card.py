"""The model card: a small versioned record of what inference needs, stored in model.pt.

Version 2 (this module writes it) holds the model config (name + fields, as plain data), the
input spec, the feature settings (extract, align, cache sections), the fold's normalisation
stats, the classes, the encoder identity (which encoders made the inputs, with the weights
sha256 of a pretrained one), the training run's
record (fold, seed, val metrics, MLflow ids, data fingerprint) and provenance (aver version,
git commit). Sections are stored as plain data and validated against today's config classes
on use, with unknown keys dropped and logged, so renaming a config key does not break saved
models. `read_card` also converts version 1 (model.pt before the card: the whole Params dump,
classes, dims and info) and refuses versions newer than it knows with a clear error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

import aver
from aver.config import AlignConfig, CacheConfig, ExtractConfig, ModelConfig, Params
from aver.errors import DataError
from aver.features.stats import FoldStats
from aver.redact import redact_obj
from aver.windows import AGGREGATE, HOP_S

log = logging.getLogger(__name__)

CARD_VERSION = 2
SECTIONS: dict[str, type[BaseModel]] = {
    "extract": ExtractConfig,
    "align": AlignConfig,
    "cache": CacheConfig,
}
UPGRADE_FIX = "upgrade aver (pip install -e . in a newer checkout) or retrain with this version"
C = TypeVar("C", bound=BaseModel)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Record):
    """Shapes and rates of the model's input (as the cache stage made them)."""

    audio_feature: str  # logmel | mfcc
    audio_dim: int  # feature bins per audio frame (encoder layers: dims per layer)
    sample_rate: int  # Hz of the waveform the features are computed from
    window_s: float
    crop: str  # center | start: where max_clip_s of a longer clip was taken from
    hop_s: float = 1.0  # windows of a clip start this far apart (aver.windows)
    max_clip_s: float | None = None  # the longest part of a clip cached (None: one window)
    aggregate: str = AGGREGATE  # a clip's probabilities from its windows'
    video_fps: float
    face_size: int  # face side in pixels (0: face embeddings)
    audio_layers: int = 0  # encoder layers per audio frame (0: spectral features, v1 files)
    video_dim: int = 0  # face embedding dims (0: face crops, v1 files)
    audio_frames: int | None = None  # per window (None: not recorded, v1 files)
    video_frames: int | None = None
    modality_dropout: float = 0.0  # train.modality_dropout the model was trained with


class EncoderIdentity(_Record):
    """Which encoders made the model's inputs: `audio` and `face` are the cache's meta.json
    records (aver.encoders: name, and for a pretrained one its weights sha256, layers,
    geometry); None in cards written before pretrained encoders (log-mel/MFCC and crops)."""

    name: str | None = None  # unused, kept so older version 2 cards validate
    revision: str | None = None
    audio: dict[str, Any] | None = None
    face: dict[str, Any] | None = None

    @property
    def pretrained(self) -> bool:
        return any(r is not None and "weights_sha256" in r for r in (self.audio, self.face))

    def records(self) -> dict[str, dict[str, Any]]:
        """{"audio": ..., "face": ...} of the records stored (as in meta.json "encoders")."""
        return {k: r for k, r in (("audio", self.audio), ("face", self.face)) if r is not None}


class Provenance(_Record):
    aver_version: str | None = None
    git_commit: str | None = None
    converted_from: int | None = None  # card version this one was converted from on read
    notes: list[str] = []  # what the conversion had to fill in


class ModelCard(_Record):
    card_version: Literal[2] = 2  # CARD_VERSION
    model: dict[str, Any]  # model config: name + fields, plain data
    classes: list[str]
    input: InputSpec
    features: dict[str, dict[str, Any]]  # extract / align / cache sections, plain data
    stats: dict[str, Any] | None = None  # FoldStats.to_dict() (None: not stored, v1 files)
    encoder: EncoderIdentity = EncoderIdentity()
    run: dict[str, Any] = {}  # fold, seed, val metrics, MLflow run ids, data fingerprint, ...
    provenance: Provenance = Provenance()

    @property
    def dims(self) -> dict[str, int]:
        """build_model's input sizes (`aver.models.InputDims`)."""
        i = self.input
        return {
            "audio_dim": i.audio_dim,
            "face_size": i.face_size,
            "audio_layers": i.audio_layers,
            "video_dim": i.video_dim,
        }

    def network_config(self) -> ModelConfig:
        """The model config, validated against today's class of its model (unknown keys dropped,
        logged); a model this aver does not have is an error."""
        from aver.models import MODEL_CONFIGS

        name = self.model.get("name", "msan")
        if name not in MODEL_CONFIGS:
            raise DataError(
                f"model card: model {name!r} is not one this aver has ({', '.join(MODEL_CONFIGS)})",
                fix="use the aver version that trained it, or retrain (dvc repro train)",
            )
        cfg: ModelConfig = lenient(MODEL_CONFIGS[name][0], self.model, "model card: model")
        return cfg

    def modalities(self) -> tuple[str, ...]:
        """The inputs the network reads ("audio", "video"; a unimodal baseline reads one)."""
        return type(self.network_config()).modalities

    def accepts_missing(self, modality: str) -> bool:
        """Can the model score a clip without `modality` (no audio track, no face)? Yes when it
        does not read it, or when it is a fusion model trained with modality dropout."""
        used = self.modalities()
        if modality not in used:
            return True
        return len(used) > 1 and self.input.modality_dropout > 0

    def section(self, name: str) -> Any:
        """The extract, align or cache settings as today's config class (None if not stored)."""
        raw = self.features.get(name)
        cls: type[BaseModel] = SECTIONS[name]
        return None if raw is None else lenient(cls, raw, f"model card: {name}")

    def fold_stats(self) -> FoldStats | None:
        return None if self.stats is None else FoldStats.from_dict(self.stats)

    def to_json(self) -> str:
        return self.model_dump_json()


def lenient(cls: type[C], raw: Mapping[str, Any], source: str) -> C:
    """`cls` from plain data; keys `cls` does not know are dropped with a warning."""
    renames: Mapping[str, str] = getattr(cls, "legacy_keys", {})
    raw = {renames.get(k, k): v for k, v in raw.items()}
    unknown = sorted(set(raw) - set(cls.model_fields))
    if unknown:
        log.warning("%s: ignoring keys this aver does not know: %s", source, ", ".join(unknown))
    try:
        return cls.model_validate({k: v for k, v in raw.items() if k in cls.model_fields})
    except ValidationError as err:
        raise DataError(
            f"{source}: stored settings are not valid for this aver ({str(err)[:300]})",
            fix="retrain with this version (dvc repro train)",
        ) from None


def card_from_params(
    params: Params,
    *,
    classes: list[str],
    dims: Mapping[str, int],
    stats: Mapping[str, Any] | None = None,
    cache_meta: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    git_commit: str | None = None,
) -> ModelCard:
    """The card of a model trained with `params` on a cache described by `cache_meta`
    (its meta.json: the cache settings used and the audio/video rates and frame counts)."""
    meta = cache_meta or {}
    cache = dict(meta.get("config") or params.cache.model_dump(mode="json"))
    extract = params.extract.model_dump(mode="json")
    audio: Mapping[str, Any] = meta.get("audio") or {}
    video: Mapping[str, Any] = meta.get("video") or {}
    return ModelCard(
        model=params.train.model.model_dump(mode="json"),
        classes=list(classes),
        input=InputSpec(
            audio_feature=str(audio.get("feature", cache["audio_encoder"])),
            audio_dim=int(dims["audio_dim"]),
            # the rate the cache's features were computed at (else the extract section's)
            sample_rate=int(audio.get("sample_rate") or extract["sample_rate"]),
            window_s=float(cache["window_s"]),
            crop=str(cache["crop"]),
            hop_s=float(cache.get("hop_s", HOP_S)),
            max_clip_s=_max_clip_s(meta, cache),
            video_fps=float(video.get("fps", cache["video_fps"])),
            face_size=int(dims["face_size"]),
            audio_layers=int(dims.get("audio_layers", 0)),
            video_dim=int(dims.get("video_dim", 0)),
            audio_frames=audio.get("n_frames"),
            video_frames=video.get("n_frames"),
            modality_dropout=float(params.train.modality_dropout),
        ),
        features=redact_obj(
            {
                "extract": extract,
                "align": params.align.model_dump(mode="json"),
                "cache": cache,
            }
        ),
        stats=None if stats is None else dict(stats),
        encoder=EncoderIdentity(**dict(meta.get("encoders") or {})),
        run=dict(run or {}),
        provenance=Provenance(aver_version=aver.__version__, git_commit=git_commit or None),
    )


def _max_clip_s(meta: Mapping[str, Any], cache: Mapping[str, Any]) -> float | None:
    """The cache's clip cap (meta.json `windows`, else its config); None: a cache from before
    whole clips (one window per clip)."""
    windows = meta.get("windows") or {}
    cap = windows.get("max_clip_s", cache.get("max_clip_s"))
    return None if cap is None else float(cap)


def read_card(raw: Mapping[str, Any] | str, source: str = "model card") -> ModelCard:
    """A card from its JSON (or dict): version 2 as is, version 1 (a whole pre-card model.pt
    dict: params, classes, dims, info) converted; newer versions refused."""
    doc = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(doc, Mapping):
        raise DataError(f"{source}: expected a JSON object", fix=UPGRADE_FIX)
    version = doc.get("card_version", 1 if "params" in doc else None)
    if version == 1:
        return _from_v1(doc, source)
    if version != CARD_VERSION:
        raise DataError(
            f"{source}: model card version {version!r} is not one this aver reads "
            f"(it reads versions 1 and {CARD_VERSION})",
            fix=UPGRADE_FIX,
        )
    try:
        return ModelCard.model_validate(doc)
    except ValidationError as err:
        raise DataError(
            f"{source}: invalid model card ({str(err)[:300]})", fix=UPGRADE_FIX
        ) from None


def _from_v1(doc: Mapping[str, Any], source: str) -> ModelCard:
    """Version 1: model.pt's whole Params dump + classes + dims + info, taken as plain data
    (the dump is not re-validated, so keys renamed since it was written do not matter)."""
    try:
        params, dims, info = doc["params"], doc["dims"], dict(doc.get("info") or {})
        classes = list(doc["classes"])
        meta = info.pop("cache_meta", None) or {}
        stats = info.pop("stats", None)
        cache = dict(meta.get("config") or params.get("cache") or {})
        notes = [] if "config" in meta else ["cache settings from the model's params"]
        if stats is None:
            notes.append("no normalisation stats stored")
        cache_defaults = CacheConfig().model_dump(mode="json")
        renamed: dict[str, Any] = {
            CacheConfig.legacy_keys.get(str(k), str(k)): v for k, v in cache.items()
        }
        setting = {**cache_defaults, **renamed}
        audio, video = meta.get("audio") or {}, meta.get("video") or {}
        extract = dict(params.get("extract") or {})
        sample_rate = audio.get("sample_rate") or extract.get("sample_rate")
        card = ModelCard(
            model=dict(params.get("train", {}).get("model") or {}),
            classes=classes,
            input=InputSpec(
                audio_feature=str(audio.get("feature", setting["audio_encoder"])),
                audio_dim=int(dims["audio_dim"]),
                sample_rate=int(sample_rate or ExtractConfig.model_fields["sample_rate"].default),
                window_s=float(setting["window_s"]),
                crop=str(setting["crop"]),
                video_fps=float(video.get("fps", setting["video_fps"])),
                face_size=int(dims["face_size"]),
                audio_frames=audio.get("n_frames"),
                video_frames=video.get("n_frames"),
            ),
            features={
                "extract": extract,
                "align": dict(params.get("align") or {}),
                **({"cache": cache} if cache else {}),
            },
            stats=stats,
            run=info,
            provenance=Provenance(
                git_commit=info.get("git_commit") or None, converted_from=1, notes=notes
            ),
        )
    except (KeyError, TypeError, ValueError, ValidationError) as err:
        raise DataError(
            f"{source}: cannot read this version 1 model file ({type(err).__name__}: {err})"[:400],
            fix="retrain (dvc repro train)",
        ) from None
    return card

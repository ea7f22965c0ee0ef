"""Typed, validated params: one model per params.yaml section (params.yaml is the source of truth).

Unknown keys, wrong types and unknown choices fail at stage start with a message that names the
dotted key and the allowed values. Non-finite numbers (nan, inf; YAML `.nan`, `.inf`) are refused
anywhere, and model shapes that cannot be built (e.g. `train.model.heads` not dividing
`train.model.d_model`) fail here, before any stage work or MLflow run.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aver import geometry
from aver.datasets import DATASETS
from aver.encoders import AUDIO_ENCODERS, AUDIO_FEATURES, FACE_CROPS, FACE_ENCODERS
from aver.errors import ConfigError
from aver.faces import DETECTORS
from aver.faces.mtcnn_config import MtcnnOptions
from aver.faces.retinaface_config import RetinaFaceOptions
from aver.models import MODEL_CONFIGS, ModelConfig, MSANConfig, all_model_keys, select_model_keys
from aver.output_settings import NOT_OUTPUT  # marks fields that do not change a stage's output
from aver.schema import Section
from aver.training.presets import PRESETS

log = logging.getLogger(__name__)
_warned: set[str] = set()  # warnings already logged by this process (params validate often)


def _one_of(value: str, names: Iterable[str]) -> str:
    """`value` when it is one of the registered `names`, else a ValueError listing them."""
    names = list(names)
    if value not in names:
        raise ValueError(
            f"{value!r} is not allowed; valid choices: {', '.join(repr(n) for n in names)}"
        )
    return value


class DemoConfig(Section):
    seed: int = 0
    speakers: int = Field(12, ge=2, le=24)
    clips_per_class: int = Field(
        3, ge=1, le=8, description="clips per class per speaker (intensity x statement x rep.)"
    )
    duration_s: float = Field(2.0, gt=0.2, le=10.0)
    size: int = Field(224, ge=64, le=720, description="frame side in pixels")
    fps: float = Field(25.0, gt=0, le=60)
    sample_rate: int = Field(16000, ge=8000, le=48000)
    workers: int = Field(1, ge=1, description="processes generating clips")
    expression: float = Field(
        1.0, gt=0, le=3.0, description="scale of the facial expressions (higher: easier faces)"
    )


class FolderConfig(Section):
    csv: str | None = Field(None, description="CSV with columns path,label,speaker")
    media_dir: str | None = Field(
        None, description="base for relative paths in the CSV (default: the CSV's folder)"
    )
    classes: list[str] | None = Field(
        None, description="allowed labels, in label index order (default: the CSV's labels)"
    )
    allow_outside_media_dir: bool = Field(
        False, description="accept CSV paths that lead outside media_dir (absolute, .., symlinks)"
    )

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        names = [c.strip() for c in v]
        if any(not c for c in names):
            raise ValueError("class names must not be empty")
        dupes = sorted({c for c in names if names.count(c) > 1})
        if dupes:
            raise ValueError(f"class names repeat: {dupes}")
        if len(names) < 2:
            raise ValueError(f"need at least 2 classes, got {names}")
        return names


class CremadConfig(Section):
    manifest: str = "../shared/data/cremad/lfs-manifest.tsv"
    tables: str = "../shared/data/cremad"
    media_url: str = (
        "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master"
    )
    raw_url: str = "https://raw.githubusercontent.com/CheyneyComputerScience/CREMA-D/master"
    folder: Literal["VideoFlash", "VideoMP4", "AudioWAV"] = Field(
        "VideoFlash", description="AudioWAV: the audio-only recordings (no video)"
    )
    label_source: Literal["intended", "perceived"] = "intended"
    limit: int | None = Field(None, ge=1, description="first N clips only (smoke runs)")


class RavdessConfig(Section):
    record_url: str = "https://zenodo.org/api/records/1188976"
    actors: list[int] = Field(default_factory=lambda: list(range(1, 25)))

    @field_validator("actors")
    @classmethod
    def _actors(cls, v: list[int]) -> list[int]:
        bad = [a for a in v if not 1 <= a <= 24]
        if bad:
            raise ValueError(f"actor ids must be in 1..24, got {bad}")
        return v


class MoseiConfig(Section):
    base_url: str = "http://immortal.multicomp.cs.cmu.edu/raw_datasets"
    subsets: list[str] = Field(default_factory=list, description="opt-in archive names")
    labels_url: str | None = Field(
        None, description="labels CSV, URL or local path (columns: see aver.datasets.mosei)"
    )


class DataConfig(Section):
    dataset: str = Field("demo", description="a name in aver.datasets.DATASETS")
    root: str = "data/raw"
    modality: Literal["audiovisual", "audio"] = Field(
        "audiovisual",
        description="audio: use the clips' sound only (audio files, or the sound track of "
        "videos); extract writes no video, align passes the clips through, only audio models "
        "train on it (dataset.json `modalities`)",
    )
    demo: DemoConfig = DemoConfig()
    ravdess: RavdessConfig = RavdessConfig()
    cremad: CremadConfig = CremadConfig()
    mosei: MoseiConfig = MoseiConfig()
    folder: FolderConfig = FolderConfig()

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        return _one_of(v, DATASETS)


class DownloadConfig(Section):
    retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    timeout_s: float = Field(60.0, gt=0, description="connect and per-read timeout, seconds")
    chunk_bytes: int = Field(1 << 20, ge=1024)
    workers: int = Field(2, ge=1)
    min_rate_bytes_s: float = Field(
        1024.0, ge=0, description="end a transfer slower than this over rate_window_s (0 = off)"
    )
    rate_window_s: float = Field(30.0, gt=0, description="window of the min_rate_bytes_s check")
    deadline_s: float | None = Field(
        None, gt=0, description="per-file limit over all retries, seconds (null = none)"
    )
    max_archive_bytes: int = Field(
        200_000_000_000, ge=1, description="largest total uncompressed size of one archive"
    )
    max_compression_ratio: float = Field(
        100.0, ge=1, description="largest uncompressed/compressed size ratio (zip bombs)"
    )
    extract_margin_bytes: int = Field(
        256 << 20, ge=0, description="free disk space to keep beyond an extracted archive"
    )

    def transfer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of aver.io.http.download for these settings."""
        return {
            "retries": self.retries,
            "backoff_s": self.backoff_s,
            "timeout_s": self.timeout_s,
            "chunk_bytes": self.chunk_bytes,
            "min_rate_bytes_s": self.min_rate_bytes_s,
            "rate_window_s": self.rate_window_s,
            "deadline_s": self.deadline_s,
        }

    def extract_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of aver.io.archives.safe_extract for these settings."""
        return {
            "max_bytes": self.max_archive_bytes,
            "max_ratio": self.max_compression_ratio,
            "margin_bytes": self.extract_margin_bytes,
        }


class ExtractConfig(Section):
    out: Annotated[str, NOT_OUTPUT] = "data/interim"
    fps: float = Field(25.0, gt=0)
    max_side: int = Field(320, ge=32, description="bound on the longer video side, pixels")
    sample_rate: int = Field(16000, ge=8000)
    crf: int = Field(20, ge=0, le=51, description="H.264 quality (lower = better, larger)")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = (
        Field("veryfast", description="x264 speed/size trade-off")
    )
    min_duration_s: float = Field(0.5, ge=0)
    max_failure_fraction: Annotated[float, NOT_OUTPUT] = Field(0.25, ge=0, le=1)
    workers: Annotated[int, NOT_OUTPUT] = Field(2, ge=1)
    executor: Annotated[Literal["local", "ray"], NOT_OUTPUT] = "local"


class AlignConfig(MtcnnOptions, RetinaFaceOptions):
    """Face alignment; each detector's own settings come from its options class in
    aver.faces.DETECTORS (mtcnn: min_face; retinaface: retinaface_weights/url/sha256)."""

    out: Annotated[str, NOT_OUTPUT] = "data/faces"
    detector: str = Field("mtcnn", description="a name in aver.faces.DETECTORS")
    weights_cache: Annotated[str, NOT_OUTPUT] = "~/.cache/aver/weights"
    sample_fps: float = Field(25.0, gt=0, description="frames per second to align")
    detect_every: int = Field(5, ge=1)
    max_skip: int = Field(
        4,
        ge=1,
        description="detection frames searched at least every max_skip-th; those between "
        "are skipped while the face stays still (1: search every one)",
    )
    still_tolerance: float = Field(
        0.02,
        ge=0,
        le=1,
        description="a face is still when its landmarks move less than this "
        "fraction of its box side between two searched frames",
    )
    track_min_face: float = Field(
        0.5,
        ge=0,
        le=1,
        description="while a face is tracked, search only for faces at least this fraction "
        "of its side (a frame where none is found is searched whole; 0: always whole)",
    )
    keep_fps: Literal["cache", "source"] | float = Field(
        "cache",
        description="faces stored per second: cache (cache.video_fps, what training "
        "reads), source (every sampled frame, align.sample_fps) or a number",
    )
    batch_size: Annotated[int, NOT_OUTPUT] = Field(32, ge=1)
    detect_side: int = Field(256, ge=32, description="longer side of frames fed to the detector")
    size: int = Field(112, ge=32)
    smoothing: float = Field(0.5, ge=0, lt=1, description="EMA weight of the previous box")
    min_detection_rate: float = Field(0.5, ge=0, le=1)
    max_failure_fraction: Annotated[float, NOT_OUTPUT] = Field(0.25, ge=0, le=1)
    shard_mb: Annotated[int, NOT_OUTPUT] = Field(256, ge=1)
    device: Annotated[Literal["auto", "cpu", "cuda"], NOT_OUTPUT] = "auto"
    executor: Annotated[Literal["local", "ray"], NOT_OUTPUT] = "local"
    workers: Annotated[int, NOT_OUTPUT] = Field(2, ge=1)

    @field_validator("detector")
    @classmethod
    def _detector(cls, v: str) -> str:
        return _one_of(v, DETECTORS)

    @field_validator("keep_fps")
    @classmethod
    def _keep_fps(cls, v: str | float) -> str | float:
        if isinstance(v, float) and not v > 0:
            raise ValueError(
                f"align.keep_fps: {v} is not a rate: give cache, source or a number > 0"
            )
        return v


CACHE_LEGACY_KEYS = {"audio_feature": "audio_encoder"}


def rename_legacy_keys(data: Any, renames: dict[str, str], section: str) -> Any:
    """Old key names mapped onto today's (one warning each); both given is an error."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for old, new in renames.items():
        if old in data:
            if new in data:
                raise ValueError(f"{section}.{old} is the old name of {section}.{new}: give one")
            data[new] = data.pop(old)
            msg = f"{section}.{old} is now {section}.{new}"
            if msg not in _warned:
                _warned.add(msg)
                log.warning("%s (rename it in params.yaml)", msg)
    return data


class CacheConfig(Section):
    legacy_keys: ClassVar[dict[str, str]] = CACHE_LEGACY_KEYS
    out: Annotated[str, NOT_OUTPUT] = "data/features"
    audio_encoder: str = Field(
        "logmel", description="logmel | mfcc, or a pretrained encoder in aver.encoders"
    )
    audio_layers: list[int] | None = Field(
        None, description="pretrained audio encoder: transformer layers kept (1-based); null: all"
    )
    face_encoder: str = Field(
        "crops", description="crops (face pixels), or a pretrained encoder in aver.encoders"
    )
    # Where the weights come from; the sha256 of the file used is part of the cache's identity.
    encoder_weights: Annotated[str | None, NOT_OUTPUT] = Field(
        None,
        description="a local weights file (one pretrained encoder) or a directory holding each "
        "encoder's file under its library name; null: the torch hub cache, downloaded once",
    )
    encoder_urls: Annotated[dict[str, str], NOT_OUTPUT] = Field(
        default_factory=dict,
        description="encoder name -> URL of its weights (default: the library's own)",
    )
    encoder_sha256: Annotated[dict[str, str], NOT_OUTPUT] = Field(
        default_factory=dict, description="encoder name -> sha256 its weights file must have"
    )
    encoder_device: Annotated[Literal["auto", "cpu", "cuda"], NOT_OUTPUT] = "auto"
    encoder_batch: Annotated[int, NOT_OUTPUT] = Field(16, ge=1, description="clips per forward")
    n_mels: int = Field(64, ge=8)
    n_mfcc: int = Field(10, ge=2)
    win_ms: float = Field(25.0, gt=0)
    hop_ms: float = Field(10.0, gt=0)
    video_fps: float = Field(5.0, gt=0)
    face_size: int = Field(64, ge=16, description="face side stored in the cache")
    window_s: float = Field(2.0, gt=0, description="the model's input: one window of this long")
    hop_s: float = Field(
        1.0, gt=0, description="windows of a clip start this far apart (aver.windows)"
    )
    max_clip_s: float = Field(
        10.0, gt=0, description="the longest part of a clip cached (its windows); >= window_s"
    )
    crop: Literal["center", "start"] = Field(
        "center", description="where max_clip_s of a longer clip is taken from"
    )
    # The splits, index.csv and stats.json are recomputed on every run; only shards are reused.
    protocol: Annotated[Literal["speaker_kfold", "random"], NOT_OUTPUT] = "speaker_kfold"
    n_folds: Annotated[int | None, NOT_OUTPUT] = Field(
        None, ge=2, description="default: the dataset's (RAVDESS 6, CREMA-D 5, folder 5, demo 3)"
    )
    val_fraction: Annotated[float, NOT_OUTPUT] = Field(0.2, gt=0, lt=1)
    seed: Annotated[int, NOT_OUTPUT] = 0
    shard_clips: Annotated[int, NOT_OUTPUT] = Field(1024, ge=1)
    max_failure_fraction: Annotated[float, NOT_OUTPUT] = Field(0.25, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """`audio_feature` (before pretrained encoders) is now `audio_encoder`."""
        return rename_legacy_keys(data, CACHE_LEGACY_KEYS, "cache")

    @field_validator("audio_encoder")
    @classmethod
    def _audio_encoder(cls, v: str) -> str:
        return _one_of(v, [*AUDIO_FEATURES, *AUDIO_ENCODERS])

    @model_validator(mode="before")
    @classmethod
    def _clip_cap_default(cls, data: Any) -> Any:
        """Unset max_clip_s (a config from before it) is at least one window."""
        if isinstance(data, dict) and "max_clip_s" not in data and "window_s" in data:
            default = cls.model_fields["max_clip_s"].default
            with contextlib.suppress(TypeError, ValueError):
                return {**data, "max_clip_s": max(default, float(data["window_s"]))}
        return data

    @model_validator(mode="after")
    def _clip_cap(self) -> CacheConfig:
        if self.max_clip_s < self.window_s:
            raise ValueError(
                f"cache.max_clip_s ({self.max_clip_s}) is shorter than cache.window_s "
                f"({self.window_s}); set max_clip_s >= window_s (= window_s: one window per clip)"
            )
        return self

    @field_validator("face_encoder")
    @classmethod
    def _face_encoder(cls, v: str) -> str:
        return _one_of(v, [FACE_CROPS, *FACE_ENCODERS])

    @field_validator("encoder_sha256")
    @classmethod
    def _sha256(cls, v: dict[str, str]) -> dict[str, str]:
        for name, digest in v.items():
            _one_of(name, [*AUDIO_ENCODERS, *FACE_ENCODERS])
            if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
                raise ValueError(f"encoder_sha256.{name}: not a sha256 (64 hex digits)")
        return {k: d.lower() for k, d in v.items()}

    @field_validator("encoder_urls")
    @classmethod
    def _urls(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            _one_of(name, [*AUDIO_ENCODERS, *FACE_ENCODERS])
        return v

    @model_validator(mode="after")
    def _layers(self) -> CacheConfig:
        spec = AUDIO_ENCODERS.get(self.audio_encoder)
        if self.audio_layers is not None:
            if spec is None:
                raise ValueError(
                    f"audio_layers is set but audio_encoder {self.audio_encoder!r} has no layers"
                    " (set audio_layers: null)"
                )
            bad = [k for k in self.audio_layers if not 1 <= k <= spec.n_layers]
            if (
                bad
                or not self.audio_layers
                or len(set(self.audio_layers)) != len(self.audio_layers)
            ):
                raise ValueError(
                    f"audio_layers {self.audio_layers}: need distinct layers in 1..{spec.n_layers}"
                    f" ({self.audio_encoder} has {spec.n_layers})"
                )
        if self.face_encoder == "torchscript" and not self.encoder_weights:
            raise ValueError(
                "face_encoder torchscript needs encoder_weights: the path of the TorchScript file"
            )
        return self

    @property
    def pretrained_audio(self) -> bool:
        return self.audio_encoder in AUDIO_ENCODERS

    @property
    def pretrained_face(self) -> bool:
        return self.face_encoder != FACE_CROPS

    @property
    def kept_layers(self) -> list[int]:
        """The audio encoder's layers kept in the cache (1-based; empty without one)."""
        spec = AUDIO_ENCODERS.get(self.audio_encoder)
        if spec is None:
            return []
        return list(self.audio_layers or range(1, spec.n_layers + 1))


class TrackingConfig(Section):
    """MLflow. URI precedence: $MLFLOW_TRACKING_URI > tracking_uri > sqlite:///mlruns.db."""

    tracking_uri: str | None = Field(None, description="default sqlite:///mlruns.db")
    artifact_root: str = Field("mlartifacts", description="artifact dir of local stores")
    experiment_prefix: str = Field("aver", description="experiment and registered model prefix")
    # (not `register`: that name would shadow BaseModel.register)
    register_model: bool = Field(True, description="register the model; best val UAR: alias")
    champion_alias: str = "champion"
    log_model: bool = Field(True, description="log the trained model as an MLflow pyfunc")


class TrainConfig(Section):
    out: Annotated[str, NOT_OUTPUT] = "models"
    preset: Annotated[str | None, NOT_OUTPUT] = Field(
        None, description="a name in aver.training.presets.PRESETS, or none"
    )
    model: ModelConfig = Field(
        default_factory=MSANConfig, description="one of aver.models.MODEL_CONFIGS, by name"
    )
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    momentum: float = Field(0.9, ge=0)
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(60, ge=1)
    schedule: Literal["none", "cosine", "step", "plateau"] = "cosine"
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.5, gt=0)
    warmup_epochs: int = Field(1, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0)
    plateau_patience: int = Field(3, ge=1, description="plateau: epochs without val UAR gain")
    min_lr: float = Field(0.0, ge=0, description="floor of cosine/plateau schedules")
    early_stop_patience: int | None = Field(
        20, ge=1, description="epochs without val UAR gain; select last: off unless given"
    )
    # NOT_OUTPUT: the checkpoint holds both the last and the best weights.
    select: Annotated[Literal["best", "last"], NOT_OUTPUT] = Field(
        "best", description="weights kept as the model: best val UAR epoch, or the last epoch"
    )
    amp: bool = Field(False, description="mixed precision; CUDA only (ignored on CPU)")
    compile: Annotated[bool, NOT_OUTPUT] = Field(
        False, description="torch.compile; CUDA only (ignored on CPU)"
    )
    seed: int = 0
    seeds: list[int] | None = Field(
        None, description="train every fold once per seed; null: [train.seed]"
    )
    deterministic: bool = Field(True, description="deterministic torch algorithms (warn only)")
    folds: Annotated[Literal["all"] | list[int], NOT_OUTPUT] = Field(default_factory=lambda: [0])
    model_fold: Annotated[int | None, NOT_OUTPUT] = Field(
        None, ge=0, description="fold saved as model.pt; default first"
    )
    use_tuned: Annotated[bool, NOT_OUTPUT] = False
    tuned_params: Annotated[str, NOT_OUTPUT] = Field(
        "reports/tune/best_params.yaml", description="read if use_tuned"
    )
    device: Annotated[Literal["auto", "cpu", "cuda"], NOT_OUTPUT] = "auto"
    num_workers: Annotated[int, NOT_OUTPUT] = Field(0, ge=0)
    augment: bool = True
    modality_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="fusion models: chance a training clip loses its audio or its video (half "
        "each), so the model also scores a clip from one modality",
    )
    executor: Annotated[Literal["local", "ray"], NOT_OUTPUT] = Field(
        "local", description="ray: one data-parallel (DDP) run over Ray Train workers"
    )
    workers: Annotated[int, NOT_OUTPUT] = Field(
        1, ge=1, description="executor ray: workers; batch_size stays global"
    )
    use_gpu: Annotated[bool, NOT_OUTPUT] = Field(
        False, description="executor ray: a GPU per worker (nccl), else gloo"
    )

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        return v if v is None else _one_of(v, ["none", *PRESETS])

    @model_validator(mode="before")
    @classmethod
    def _last_keeps_training(cls, data: Any) -> Any:
        """select last keeps the final weights, so early stopping is off unless it is given."""
        if isinstance(data, dict) and data.get("select") == "last":
            data = {"early_stop_patience": None, **data}
        return data

    @field_validator("model", mode="before")
    @classmethod
    def _model_keys(cls, data: Any) -> Any:
        """Fill in the default name; drop other models' keys, refuse keys no model has."""
        return select_model_keys(data) if isinstance(data, dict) else data

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("train.seeds: a non-empty list of distinct ints, or null")
        return v

    def run_seeds(self) -> list[int]:
        """The seeds each fold is trained with: train.seeds, or [train.seed] when that is null.

        The first one is the seed of the model fold's run that becomes model.pt."""
        return list(self.seeds) if self.seeds is not None else [self.seed]


class SearchParam(Section):
    type: Literal["loguniform", "uniform", "choice", "randint"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None


class TuneConfig(Section):
    out: str = "reports/tune"
    search: Literal["random", "tpe"] = "random"
    scheduler: Literal["asha", "fifo"] = "asha"
    num_samples: int = Field(4, ge=1)
    max_concurrent: int = Field(2, ge=1)
    max_epochs: int = Field(4, ge=1)
    grace_period: int = Field(1, ge=1)
    reduction_factor: int = Field(2, ge=2)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(
        1.0, ge=0, description="asked when a node has, or the autoscaler can add, GPUs; else CPU"
    )
    max_failures: int = Field(2, ge=0)
    storage_path: str = Field("data/tune", description="local dir or shared storage (Ray)")
    fold: int = Field(0, ge=0)
    cache_access: Literal["shared", "dvc_pull"] = "shared"
    cache_path: str | None = Field(None, description="cache path every node sees (default: ours)")
    ray_num_cpus: int | None = Field(None, ge=1, description="local Ray only; default all")
    pending_timeout_s: float | None = Field(
        1800.0, gt=0, description="fail when trials wait this long and none starts; null: wait"
    )
    space: dict[str, SearchParam] = Field(default_factory=dict)


class EvaluateConfig(Section):
    out: str = "reports"
    batch_size: int | None = Field(None, ge=1, description="default: train.batch_size")
    bootstrap: int = Field(1000, ge=100, description="resamples of the test clips for the 95% CI")
    seed: int = Field(0, description="seed of the bootstrap")


class Params(Section):
    data: DataConfig = DataConfig()
    download: DownloadConfig = DownloadConfig()
    extract: ExtractConfig = ExtractConfig()
    align: AlignConfig = AlignConfig()
    cache: CacheConfig = CacheConfig()
    tune: TuneConfig = TuneConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _face_size(self) -> Params:
        """The face stem (stride, 2x2 pool) must leave at least one pixel per video patch
        (face crops only: face embeddings have no stem)."""
        model, need = self.train.model, 2 * self.train.model.video_stride
        need *= self.train.model.video_patches
        if not self.cache.pretrained_face and self.cache.face_size < need:
            raise ValueError(
                f"cache.face_size={self.cache.face_size} is too small for "
                f"train.model.video_stride={model.video_stride} and train.model.video_patches="
                f"{model.video_patches} (needs at least 2 x stride x patches = {need}); lower "
                "those or raise cache.face_size"
            )
        return self

    @model_validator(mode="after")
    def _ctm_positives(self) -> Params:
        """msan with CTM: warn (once per process) when ctm_delta_s < 0.5 / cache.video_fps.

        Audio tokens then exist with no video token within ctm_delta_s, and they get no CTM
        signal. A warning, not an error: the model trains and CTM still works on the tokens that
        have a positive (a narrower delta can be deliberate); the message names the fix."""
        model, cache = self.train.model, self.cache
        need = geometry.min_ctm_delta(cache.video_fps)
        if not isinstance(model, MSANConfig):
            return self
        if model.ctm_weight <= 0 or model.ctm_delta_s >= need - 1e-9:
            return self
        share = geometry.expected_positive_fraction(model.ctm_delta_s, cache.video_fps)
        msg = (
            f"train.model.ctm_delta_s={model.ctm_delta_s:g} gives only about {100 * share:.0f}% "
            f"of the audio tokens a video token that close at cache.video_fps="
            f"{cache.video_fps:g} (the rest get no CTM signal); set train.model.ctm_delta_s >= "
            f"{need:g} (0.5 / cache.video_fps) to give every audio token one"
        )
        if msg not in _warned:
            _warned.add(msg)
            log.warning(msg)
        return self


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid parameters"]
    for e in err.errors():
        loc = tuple(e["loc"])
        if loc[:2] == ("train", "model") and len(loc) > 2 and loc[2] in MODEL_CONFIGS:
            loc = loc[:2] + loc[3:]  # the union's tag: train.model.msan.x -> train.model.x
        key = ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden":
            section = _section_of(loc[:-1])
            allowed = ", ".join(sorted(section.model_fields)) if section else "?"
            lines.append(f"  {key}: unknown key; allowed keys here: {allowed}")
        elif e["type"] == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            lines.append(f"  {key}: {e['input']!r} is not allowed; valid choices: {expected}")
        elif e["type"] == "finite_number":
            lines.append(f"  {key}: {e.get('input')!r} is not a finite number; use a finite value")
        elif e["type"] == "value_error" and isinstance(e.get("input"), dict):
            lines.append(f"  {str(e['msg']).removeprefix('Value error, ')}")  # names its keys
        elif e["type"] == "value_error":
            lines.append(f"  {key}: {str(e['msg']).removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _section_of(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def non_finite_keys(raw: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every nan/inf float in a raw params mapping (lists index as key.N)."""
    if isinstance(raw, float):
        return [] if math.isfinite(raw) else [prefix]
    if isinstance(raw, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list | tuple):
        items = [(f"{prefix}.{i}", v) for i, v in enumerate(raw)]
    else:
        return []
    return [key for k, v in items for key in non_finite_keys(v, k)]


def parse_params(raw: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise ConfigError naming each bad key and the allowed values."""
    bad = non_finite_keys(raw or {})
    if bad:
        raise ConfigError(
            f"{source}: invalid parameters\n"
            + "\n".join(f"  {k}: not a finite number (nan and inf are refused)" for k in bad),
            fix=f"set a finite value for {', '.join(bad)} in {source}",
        )
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(_format_error(err, source), fix=f"edit {source}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml (or another YAML file)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            "parameter file not found",
            path=path,
            fix="run from the repository root, or pass --params",
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}", path=path) from None
    return parse_params(raw, str(path))


def flatten(params: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Flatten params to dotted keys (for MLflow)."""
    out: dict[str, Any] = {}
    for key, value in params.model_dump().items():
        _flatten_into(out, f"{prefix}{key}", value)
    return out


def _flatten_into(out: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten_into(out, f"{key}.{k}", v)
    else:
        out[key] = value


def with_overrides(params: Params, overrides: dict[str, Any], source: str = "overrides") -> Params:
    """Return params with dotted-key overrides applied (e.g. {"train.lr": 3e-4}), re-validated."""
    raw = params.model_dump()
    for dotted, value in overrides.items():
        node = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(
                    f"{source}: {dotted}: {part!r} is not a params section",
                    fix=f"use a key that exists in params.yaml ({source})",
                )
            node = node[part]
        known = all_model_keys() if parts[:-1] == ["train", "model"] else node
        if parts[-1] not in known:
            raise ConfigError(
                f"{source}: {dotted}: unknown key",
                fix=f"use a key that exists in params.yaml ({source})",
            )
        node[parts[-1]] = value
    return parse_params(raw, source)

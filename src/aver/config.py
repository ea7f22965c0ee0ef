"""Typed, validated params: one model per params.yaml section (params.yaml is the source of truth).

Unknown keys, wrong types and unknown choices fail at stage start with a message that names the
dotted key and the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aver.errors import ConfigError

DATASETS = ("demo", "ravdess", "cremad", "mosei", "folder")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class CremadConfig(Section):
    manifest: str = "../shared/data/cremad/lfs-manifest.tsv"
    tables: str = "../shared/data/cremad"
    media_url: str = (
        "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master"
    )
    raw_url: str = "https://raw.githubusercontent.com/CheyneyComputerScience/CREMA-D/master"
    folder: Literal["VideoFlash", "VideoMP4"] = "VideoFlash"
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
    dataset: Literal["demo", "ravdess", "cremad", "mosei", "folder"] = "demo"
    root: str = "data/raw"
    demo: DemoConfig = DemoConfig()
    ravdess: RavdessConfig = RavdessConfig()
    cremad: CremadConfig = CremadConfig()
    mosei: MoseiConfig = MoseiConfig()
    folder: FolderConfig = FolderConfig()


class DownloadConfig(Section):
    retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    chunk_bytes: int = Field(1 << 20, ge=1024)
    workers: int = Field(2, ge=1)


class ExtractConfig(Section):
    out: str = "data/interim"
    fps: float = Field(25.0, gt=0)
    max_side: int = Field(320, ge=32, description="bound on the longer video side, pixels")
    sample_rate: int = Field(16000, ge=8000)
    crf: int = Field(20, ge=0, le=51, description="H.264 quality (lower = better, larger)")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = (
        Field("veryfast", description="x264 speed/size trade-off")
    )
    min_duration_s: float = Field(0.5, ge=0)
    max_failure_fraction: float = Field(0.25, ge=0, le=1)
    workers: int = Field(2, ge=1)
    executor: Literal["local", "ray"] = "local"


class AlignConfig(Section):
    out: str = "data/faces"
    detector: Literal["mtcnn", "retinaface"] = "mtcnn"
    retinaface_weights: str | None = Field(None, description="local .pth state dict")
    retinaface_url: str | None = Field(None, description="download once into weights_cache")
    retinaface_sha256: str | None = None
    weights_cache: str = "~/.cache/aver/weights"
    sample_fps: float = Field(25.0, gt=0, description="frames per second to align")
    detect_every: int = Field(5, ge=1)
    batch_size: int = Field(32, ge=1)
    detect_side: int = Field(256, ge=32, description="longer side of frames fed to the detector")
    min_face: int = Field(20, ge=8, description="smallest face side in detection pixels (mtcnn)")
    size: int = Field(112, ge=32)
    smoothing: float = Field(0.5, ge=0, lt=1, description="EMA weight of the previous box")
    min_detection_rate: float = Field(0.5, ge=0, le=1)
    max_failure_fraction: float = Field(0.25, ge=0, le=1)
    shard_mb: int = Field(256, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    executor: Literal["local", "ray"] = "local"
    workers: int = Field(2, ge=1)


class CacheConfig(Section):
    out: str = "data/features"
    audio_feature: Literal["logmel", "mfcc"] = "logmel"
    n_mels: int = Field(64, ge=8)
    n_mfcc: int = Field(10, ge=2)
    win_ms: float = Field(25.0, gt=0)
    hop_ms: float = Field(10.0, gt=0)
    video_fps: float = Field(5.0, gt=0)
    face_size: int = Field(64, ge=16, description="face side stored in the cache")
    window_s: float = Field(2.0, gt=0)
    crop: Literal["center", "start"] = "center"
    protocol: Literal["speaker_kfold", "random"] = "speaker_kfold"
    n_folds: int | None = Field(None, ge=2, description="default: the dataset's")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    shard_clips: int = Field(1024, ge=1)
    max_failure_fraction: float = Field(0.25, ge=0, le=1)


class ModelConfig(Section):
    name: Literal["avtca", "msan", "audio_only", "video_only", "late_fusion"] = "msan"
    variant: Literal["it1", "it4", "ct1", "ct4", "full"] = "full"
    position: Literal["none", "index_rope", "tarope"] = "tarope"
    ctm_weight: float = Field(0.1, ge=0)
    ctm_delta_s: float = Field(0.04, gt=0)
    ctm_temperature: float = Field(0.1, gt=0)
    tau_s: float = Field(0.04, gt=0, description="TaRoPE time unit")
    rope_base: float = Field(10000.0, gt=1)
    d_model: int = Field(64, ge=8)
    heads: int = Field(4, ge=1, description="msan/baselines; avtca takes heads from variant")
    layers: int = Field(2, ge=1, description="transformer blocks (avtca: IT blocks)")
    dropout: float = Field(0.1, ge=0, lt=1)
    audio_channels: int = Field(64, ge=4, description="audio Conv1D front-end width")
    video_channels: int = Field(32, ge=4, description="video Conv2D front-end width")
    video_patches: int = Field(2, ge=1, description="local extractor: n x n patches per map")
    video_stride: int = Field(2, ge=1, le=4, description="face stem conv stride (paper: 1)")
    pool: Literal["mean", "max", "meanmax"] = Field(
        "meanmax", description="msan/baselines masked pooling over time"
    )
    ctm_dim: int = Field(32, ge=4, description="CTM projection head output width")
    unimodal_weight: float = Field(
        1.0,
        ge=0,
        description="fusion models: weight of a cross-entropy loss on each modality's own "
        "classifier (pre-fusion encoder tokens; late_fusion: each branch); 0 = off",
    )


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
    out: str = "models"
    preset: Literal["none", "avtca_paper", "demo_fast"] | None = None
    model: ModelConfig = ModelConfig()
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
    early_stop_patience: int | None = Field(20, ge=1)
    amp: bool = Field(False, description="mixed precision; CUDA only (ignored on CPU)")
    compile: bool = Field(False, description="torch.compile; CUDA only (ignored on CPU)")
    seed: int = 0
    deterministic: bool = Field(True, description="deterministic torch algorithms (warn only)")
    folds: Literal["all"] | list[int] = Field(default_factory=lambda: [0])
    model_fold: int | None = Field(None, ge=0, description="fold saved as model.pt; default first")
    use_tuned: bool = False
    tuned_params: str = Field("reports/tune/best_params.yaml", description="read if use_tuned")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0)
    augment: bool = True
    executor: Literal["local", "ray"] = Field(
        "local", description="ray: one data-parallel (DDP) run over Ray Train workers"
    )
    workers: int = Field(1, ge=1, description="executor ray: workers; batch_size stays global")
    use_gpu: bool = Field(False, description="executor ray: a GPU per worker (nccl), else gloo")


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
    gpus_per_trial: float = Field(1.0, ge=0, description="used only when the cluster has GPUs")
    max_failures: int = Field(2, ge=0)
    storage_path: str = Field("data/tune", description="local dir or shared storage (Ray)")
    fold: int = Field(0, ge=0)
    cache_access: Literal["shared", "dvc_pull"] = "shared"
    cache_path: str | None = Field(None, description="cache path every node sees (default: ours)")
    ray_num_cpus: int | None = Field(None, ge=1, description="local Ray only; default all")
    space: dict[str, SearchParam] = Field(default_factory=dict)


class EvaluateConfig(Section):
    out: str = "reports"
    batch_size: int | None = Field(None, ge=1, description="default: train.batch_size")


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


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid parameters"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            section = _section_of(e["loc"][:-1])
            allowed = ", ".join(sorted(section.model_fields)) if section else "?"
            lines.append(f"  {key}: unknown key; allowed keys here: {allowed}")
        elif e["type"] == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            lines.append(f"  {key}: {e['input']!r} is not allowed; valid choices: {expected}")
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


def parse_params(raw: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise ConfigError naming each bad key and the allowed values."""
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
        if parts[-1] not in node:
            raise ConfigError(
                f"{source}: {dotted}: unknown key",
                fix=f"use a key that exists in params.yaml ({source})",
            )
        node[parts[-1]] = value
    return parse_params(raw, source)

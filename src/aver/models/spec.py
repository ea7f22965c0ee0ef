"""What every model shares (torch-free): its input sizes (`InputDims`, read from the cache's
array shapes) and its config fields (`ModelConfigBase`, `TokenModelConfig`).

Each model's config class lives next to its code (`msan_config`, `avtca_config`,
`baselines_config`) and is registered once in `aver.models.MODEL_CONFIGS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from aver.errors import DataError
from aver.schema import Section

AUDIO_SHAPES = "(Ta, F) features or (Ta, L, D) encoder layers"
VIDEO_SHAPES = "(Tv, S, S, 3) face crops or (Tv, E) face embeddings"


@dataclass(frozen=True)
class InputDims:
    """A model's input sizes, which also choose its front-ends (`models.encoders`).

    Audio: `audio_layers == 0`: frames of `audio_dim` features (log-mel, MFCC); else the hidden
    states of `audio_layers` layers of `audio_dim` dims of a pretrained speech encoder. Video:
    `video_dim == 0`: face crops of `face_size` pixels; else face embeddings of `video_dim` dims
    (`face_size` is 0).
    """

    audio_dim: int
    face_size: int = 0
    audio_layers: int = 0
    video_dim: int = 0

    def __post_init__(self) -> None:
        if self.audio_dim < 1 or self.audio_layers < 0 or self.face_size < 0 or self.video_dim < 0:
            raise ValueError(f"input dims must be positive (0 = not used): {self}")
        if (self.face_size > 0) == (self.video_dim > 0):
            raise ValueError(f"input dims need exactly one of face_size and video_dim: {self}")

    @property
    def audio_embeddings(self) -> bool:
        """Audio is a pretrained encoder's layers (else spectral features)."""
        return self.audio_layers > 0

    @property
    def video_embeddings(self) -> bool:
        """Video is per-frame face embeddings (else face crops)."""
        return self.video_dim > 0

    @classmethod
    def from_shapes(
        cls, audio_shape: Sequence[int], video_shape: Sequence[int], source: str = "cache"
    ) -> InputDims:
        """Dims from one clip's array shapes: audio (Ta, F) or (Ta, L, D); video (Tv, S, S, 3)
        or (Tv, E). Any other shape is a DataError naming `source`."""
        a, v = tuple(int(n) for n in audio_shape), tuple(int(n) for n in video_shape)
        fix = "rebuild the feature cache with this aver (dvc repro cache)"
        if len(a) not in (2, 3) or min(a[1:], default=0) < 1:
            raise DataError(
                f"{source}: audio arrays of shape {a}; expected {AUDIO_SHAPES}", fix=fix
            )
        crops = len(v) == 4 and v[1] == v[2] and v[3] == 3 and v[1] > 0
        if not crops and not (len(v) == 2 and v[1] > 0):
            raise DataError(
                f"{source}: video arrays of shape {v}; expected {VIDEO_SHAPES}", fix=fix
            )
        return cls(
            audio_dim=a[-1],
            face_size=v[1] if crops else 0,
            audio_layers=a[1] if len(a) == 3 else 0,
            video_dim=0 if crops else v[1],
        )

    def kwargs(self) -> dict[str, int]:
        """The four sizes as `build_model` keywords (and the model card's `dims`)."""
        return asdict(self)


class ModelConfigBase(Section):
    """Fields of every model: width, depth, dropout, the conv front-ends and branch losses."""

    # the inputs the network reads (a unimodal baseline ignores the other modality's arrays)
    modalities: ClassVar[tuple[str, ...]] = ("audio", "video")

    name: str
    d_model: int = Field(64, ge=8)
    layers: int = Field(2, ge=1, description="transformer blocks (avtca: IT blocks)")
    dropout: float = Field(0.1, ge=0, lt=1)
    audio_channels: int = Field(64, ge=4, description="audio Conv1D front-end width")
    video_channels: int = Field(32, ge=4, description="video Conv2D front-end width")
    video_patches: int = Field(2, ge=1, description="local extractor: n x n patches per map")
    video_stride: int = Field(2, ge=1, le=4, description="face stem conv stride (paper: 1)")
    unimodal_weight: float = Field(
        1.0,
        ge=0,
        description="fusion models: weight of a cross-entropy loss on each modality's own "
        "classifier (pre-fusion encoder tokens; late_fusion: each branch); 0 = off",
    )


class TokenModelConfig(ModelConfigBase):
    """Models with their own Transformer over tokens (msan, baselines): heads, positions, pool."""

    heads: int = Field(4, ge=1)
    position: Literal["none", "index_rope", "tarope"] = "tarope"
    tau_s: float = Field(
        0.04,
        gt=0,
        description="TaRoPE time unit: the fastest feature pair turns 1 rad per tau_s "
        "(1 rad per 40 ms audio token; aver.geometry)",
    )
    rope_base: float = Field(
        100.0,
        gt=1,
        description="rotary base: the slowest TaRoPE pair turns window_s / tau_s * "
        "base^(-(d_head-2)/d_head) rad over the window, 0.89 at the defaults (aver.geometry)",
    )
    pool: Literal["mean", "max", "meanmax"] = Field(
        "meanmax", description="masked pooling over time"
    )

    @model_validator(mode="after")
    def _heads_split_d_model(self) -> TokenModelConfig:
        """Attention heads must split d_model evenly (and into even widths for rotary)."""
        if self.d_model % self.heads:
            raise ValueError(
                f"train.model.heads={self.heads} does not divide train.model.d_model="
                f"{self.d_model} (d_model / heads is the head width); set train.model.d_model "
                f"to a multiple of heads (e.g. {self.heads * (self.d_model // self.heads + 1)}) "
                "or change train.model.heads"
            )
        if self.position != "none" and (self.d_model // self.heads) % 2:
            raise ValueError(
                f"train.model.position={self.position!r} needs an even head width, but "
                f"d_model / heads = {self.d_model}/{self.heads} = {self.d_model // self.heads}; "
                "choose train.model.d_model and heads so that d_model / heads is even, or set "
                "train.model.position: none"
            )
        return self

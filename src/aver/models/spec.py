"""Config fields every model shares (torch-free): `ModelConfigBase` and `TokenModelConfig`.

Each model's config class lives next to its code (`msan_config`, `avtca_config`,
`baselines_config`) and is registered once in `aver.models.MODEL_CONFIGS`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from aver.schema import Section


class ModelConfigBase(Section):
    """Fields of every model: width, depth, dropout, the conv front-ends and branch losses."""

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

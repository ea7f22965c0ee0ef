"""MSAN's config (torch-free): token model fields plus the CTM loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aver.models.spec import TokenModelConfig


class MSANConfig(TokenModelConfig):
    name: Literal["msan"] = "msan"
    ctm_weight: float = Field(0.1, ge=0)
    ctm_delta_s: float = Field(
        0.1,
        gt=0,
        description="CTM: video tokens within this many seconds of an audio token are its "
        "positives; every audio token has one when >= 0.5 / cache.video_fps (aver.geometry)",
    )
    ctm_temperature: float = Field(0.1, gt=0)
    ctm_dim: int = Field(32, ge=4, description="CTM projection head output width")

"""Configs of the unimodal and late-fusion baselines (torch-free)."""

from __future__ import annotations

from typing import ClassVar, Literal

from aver.models.spec import TokenModelConfig


class AudioOnlyConfig(TokenModelConfig):
    modalities: ClassVar[tuple[str, ...]] = ("audio",)
    name: Literal["audio_only"] = "audio_only"


class VideoOnlyConfig(TokenModelConfig):
    modalities: ClassVar[tuple[str, ...]] = ("video",)
    name: Literal["video_only"] = "video_only"


class LateFusionConfig(TokenModelConfig):
    name: Literal["late_fusion"] = "late_fusion"

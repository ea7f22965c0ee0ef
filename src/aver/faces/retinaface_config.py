"""The `align` settings RetinaFace reads (torch-free: aver.config composes AlignConfig)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from aver.output_settings import NOT_OUTPUT
from aver.schema import Section


class RetinaFaceOptions(Section):
    retinaface_weights: str | None = Field(None, description="local .pth state dict")
    retinaface_url: str | None = Field(None, description="download once into weights_cache")
    retinaface_sha256: Annotated[str | None, NOT_OUTPUT] = None

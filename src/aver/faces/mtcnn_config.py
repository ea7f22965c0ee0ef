"""The `align` settings MTCNN reads (torch-free: aver.config composes AlignConfig from them)."""

from __future__ import annotations

from pydantic import Field

from aver.schema import Section


class MtcnnOptions(Section):
    min_face: int = Field(20, ge=8, description="smallest face side in detection pixels (mtcnn)")

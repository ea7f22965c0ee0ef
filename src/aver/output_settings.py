"""Which config fields change a stage's output: every field, unless marked `NOT_OUTPUT`.

A field that does not change what a stage writes (where it writes, how many workers, failure
tolerance, ...) is annotated `Annotated[T, NOT_OUTPUT]` in its config section. Everything else
is an output setting: a finished item (a clip, a shard, a checkpoint) is reused only when its
output settings are unchanged. A new field is an output setting by default, so forgetting the
marker costs a rebuild, never a stale result.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class _NotOutput:
    """The marker type (one instance, `NOT_OUTPUT`)."""

    def __repr__(self) -> str:
        return "NOT_OUTPUT"


NOT_OUTPUT = _NotOutput()


def output_fields(section: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `section` that change the output, in declaration order."""
    return tuple(
        name
        for name, info in section.model_fields.items()
        if not any(m is NOT_OUTPUT for m in info.metadata)
    )


def output_settings(cfg: BaseModel, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
    """`cfg`'s output settings, field -> value (nested sections whole)."""
    return cfg.model_dump(mode=mode, include=set(output_fields(type(cfg))))

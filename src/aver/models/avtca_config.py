"""AVT-CA's config (torch-free): the Table V variant fixes the attention heads."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from aver.models.spec import ModelConfigBase

# variant -> (IT heads or None, CT heads or None); aver.models.avtca builds from this table.
VARIANTS: dict[str, tuple[int | None, int | None]] = {
    "it1": (1, None),
    "it4": (4, None),
    "ct1": (None, 1),
    "ct4": (None, 4),
    "full": (4, 4),
}


class AVTCAConfig(ModelConfigBase):
    name: Literal["avtca"] = "avtca"
    variant: Literal["it1", "it4", "ct1", "ct4", "full"] = "full"

    @model_validator(mode="after")
    def _heads_split_d_model(self) -> AVTCAConfig:
        """The variant's heads must split d_model evenly."""
        heads = max(h or 1 for h in VARIANTS[self.variant])
        if self.d_model % heads:
            raise ValueError(
                f"train.model.d_model={self.d_model} is not divisible by the {heads} heads "
                f"of avtca variant {self.variant!r}; set train.model.d_model to a multiple "
                f"of {heads}"
            )
        return self

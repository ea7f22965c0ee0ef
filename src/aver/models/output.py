"""What every model's forward returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """Class logits (B, C) and auxiliary losses with their weights already applied.

    The training loss is `CE(logits, label) + sum(aux_losses.values())`.
    """

    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)

"""What every model's forward returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """Class logits (B, C), auxiliary losses with their weights already applied, and the
    per-modality logits of a fusion model's own branch classifiers.

    The training loss is `CE(logits, label) + branch_weight * sum(CE(b, label) for b in
    branch_logits.values()) + sum(aux_losses.values())`.
    """

    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    branch_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    branch_weight: float = 0.0

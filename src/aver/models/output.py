"""What every model's forward returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """Class logits (B, C), auxiliary losses with their weights already applied, and the
    per-modality logits of a fusion model's own branch classifiers.

    The training loss is `CE(logits, label) + branch_weight * sum(CE(b, label) for b in
    branch_logits.values()) + sum(aux_losses.values())`. `branch_present` (B,) bool per branch
    says which clips have that modality at all (a mask with a real position); a branch's CE is
    taken over those clips only (absent: every clip has it).
    """

    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    branch_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    branch_weight: float = 0.0
    branch_present: dict[str, torch.Tensor] = field(default_factory=dict)

"""A tiny real model and loaders in the "Model batch" format, for loop/checkpoint tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

N_CLASSES, AUDIO_DIM, TA, TV, SIDE = 3, 8, 12, 4, 8


@dataclass
class Out:
    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


class TinyAV(nn.Module):
    """Masked means of audio frames and video pixels -> MLP; an L2 auxiliary loss."""

    def __init__(self, n_classes: int = N_CLASSES, audio_dim: int = AUDIO_DIM, aux: float = 0.01):
        super().__init__()
        self.audio = nn.Linear(audio_dim, 16)
        self.video = nn.Linear(3, 16)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(32, n_classes)
        self.aux = aux

    def forward(self, batch: dict) -> Out:
        am = batch["audio_mask"].unsqueeze(-1).float()
        a = (batch["audio"] * am).sum(1) / am.sum(1).clamp(min=1)
        vm = batch["video_mask"].float()
        v = batch["video"].mean(dim=(3, 4))  # (B, Tv, 3)
        v = (v * vm.unsqueeze(-1)).sum(1) / vm.sum(1, keepdim=True).clamp(min=1)
        h = torch.relu(torch.cat([self.audio(a), self.video(v)], dim=-1))
        logits = self.head(self.drop(h))
        return Out(logits, {"l2": self.aux * h.pow(2).mean()})


class TinySet(Dataset):
    """Separable-ish random clips: class c shifts audio bin c and video channel c % 3."""

    def __init__(self, n: int, seed: int, noise: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        self.label = torch.arange(n) % N_CLASSES
        self.audio = torch.randn(n, TA, AUDIO_DIM, generator=g) * noise
        self.video = torch.randn(n, TV, 3, SIDE, SIDE, generator=g) * noise
        for i, c in enumerate(self.label.tolist()):
            self.audio[i, :, c] += 1.5
            self.video[i, :, c % 3] += 0.5
        self.ids = [f"clip{seed}-{i:03d}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        return {
            "audio": self.audio[i],
            "audio_mask": torch.ones(TA, dtype=torch.bool),
            "audio_times": torch.arange(TA, dtype=torch.float32) * 0.04,
            "video": self.video[i],
            "video_mask": torch.ones(TV, dtype=torch.bool),
            "video_times": torch.arange(TV, dtype=torch.float32) * 0.2,
            "label": self.label[i],
            "clip_id": self.ids[i],
        }


def loaders(n_train: int = 24, n_val: int = 12, batch_size: int = 6, seed: int = 0):
    """(train, val) DataLoaders; the train loader shuffles with its own generator."""
    train = DataLoader(
        TinySet(n_train, seed=1),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    val = DataLoader(TinySet(n_val, seed=2), batch_size=batch_size, shuffle=False)
    return train, val

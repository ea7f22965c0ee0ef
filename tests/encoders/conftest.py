"""Encoder weights for tests, on top of `encoder_weights_dir` (tests/conftest.py).

`encoder_weights_file(name)` -> the path of a random-weights state dict of encoder `name` under
its library file name (a small TorchScript model for `torchscript`), saved once per session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from aver.encoders import AUDIO_ENCODERS, FACE_ENCODERS

SCRIPTED_DIM = 24


class TinyFaceNet(nn.Module):
    """A small face embedder, scripted for the `torchscript` encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8, SCRIPTED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="session")
def encoder_weights_file(
    encoder_weights_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    def get(name: str) -> Path:
        if name == "torchscript":
            path = tmp_path_factory.getbasetemp() / "tiny_face.pt"
            if not path.exists():
                torch.manual_seed(0)
                torch.jit.save(torch.jit.script(TinyFaceNet().eval()), str(path))
            return path
        spec = AUDIO_ENCODERS.get(name) or FACE_ENCODERS[name]
        return encoder_weights_dir(name) / str(spec.filename)

    return get

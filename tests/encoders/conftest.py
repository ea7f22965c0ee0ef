"""Encoder weights for tests: each architecture with random weights, saved once per session.

`encoder_weights_file(name)` -> the path of a state dict of encoder `name` (a TorchScript file
for `torchscript`), saved under the library's file name in a session folder. End-to-end tests
elsewhere can use it with `from tests.encoders.conftest import encoder_weights_file  # noqa`.
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


def save_random_weights(name: str, folder: Path) -> Path:
    """Save encoder `name`'s architecture with random (seeded) weights into `folder`."""
    from aver.encoders import audio, face

    torch.manual_seed(0)
    if name == "torchscript":
        path = folder / "tiny_face.pt"
        torch.jit.save(torch.jit.script(TinyFaceNet().eval()), str(path))
        return path
    if name in AUDIO_ENCODERS:
        spec = AUDIO_ENCODERS[name]
        model, filename = audio.build_model(spec), spec.filename
    else:
        fspec = FACE_ENCODERS[name]
        model, filename = face.build_model(fspec), str(fspec.filename)
    path = folder / filename
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def encoder_weights_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("encoder-weights")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = save_random_weights(name, folder)
        return made[name]

    return get

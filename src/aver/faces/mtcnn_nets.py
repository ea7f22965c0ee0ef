"""MTCNN's three networks (P-, R-, O-net) with the weights facenet-pytorch ships in its wheel.

The layers and parameter names are facenet-pytorch's (MIT licence), so its `data/*.pt` state
dicts load strictly; the package itself is never imported (it imports torchvision, which costs
seconds of start-up), its files are found with `importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aver.errors import DataError
from aver.io.state_dict import load_state_dict

NETS = ("pnet", "rnet", "onet")


def weights_dir() -> Path:
    """facenet-pytorch's `data/` folder (pnet.pt, rnet.pt, onet.pt), without importing it."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "facenet-pytorch is not installed (MTCNN's weights ship in its wheel)",
            fix="pip install --no-deps facenet-pytorch (scripts/setup.sh does)",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _pool(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.max_pool2d(x, k, 2, ceil_mode=True)


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 windows at stride 2 -> (box offsets, p(face))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _pool(self.prelu1(self.conv1(x)), 2)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refine net: 24x24 crops -> (box offsets, p(face))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _pool(self.prelu1(self.conv1(x)), 3)
        x = _pool(self.prelu2(self.conv2(x)), 3)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).reshape(len(x), -1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net: 48x48 crops -> (box offsets, 5 landmarks as x1..x5 y1..y5, p(face))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = _pool(self.prelu1(self.conv1(x)), 3)
        x = _pool(self.prelu2(self.conv2(x)), 3)
        x = _pool(self.prelu3(self.conv3(x)), 2)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).reshape(len(x), -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def load_nets(device: str = "cpu") -> tuple[PNet, RNet, ONet]:
    """The three nets with facenet-pytorch's weights, in eval mode on `device`, channels-last
    (oneDNN runs their few-channel convolutions and pools several times faster so on CPU)."""
    folder = weights_dir()
    nets = (PNet(), RNet(), ONet())
    for name, net in zip(NETS, nets):
        state = load_state_dict(
            folder / f"{name}.pt", fix="reinstall facenet-pytorch (pip install --no-deps)"
        )
        net.load_state_dict(state)
        net.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        net.eval().requires_grad_(False)
    return nets

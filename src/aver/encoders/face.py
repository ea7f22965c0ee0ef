"""A frozen per-frame face network: aligned RGB face crops -> one embedding per frame.

Builders (named by `FaceEncoderSpec.builder`) make the architecture with random weights; the
weights file is then loaded strictly. facenet-pytorch's InceptionResnetV1 is built with its
classifier so the released files (which hold it) load strictly; it is then switched to
embedding output (L2-normalised, 512). torchvision ResNets drop their ImageNet classifier.
`torchscript` loads a whole TorchScript model from its file.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aver.encoders.specs import FaceEncoderSpec
from aver.errors import DataError
from aver.io.state_dict import load_into


def _facenet(num_classes: int) -> nn.Module:
    from facenet_pytorch import InceptionResnetV1

    return InceptionResnetV1(pretrained=None, classify=True, num_classes=num_classes)


def facenet_vggface2() -> nn.Module:
    return _facenet(8631)


def facenet_casia() -> nn.Module:
    return _facenet(10575)


def _resnet(name: str) -> nn.Module:
    models = importlib.import_module("torchvision.models")
    net: nn.Module = getattr(models, name)(weights=None)
    return net


def resnet18() -> nn.Module:
    return _resnet("resnet18")


def resnet50() -> nn.Module:
    return _resnet("resnet50")


def build_model(spec: FaceEncoderSpec) -> nn.Module:
    """The architecture of `spec` with random weights (no download)."""
    module, func = spec.builder.split(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model: nn.Module = getattr(importlib.import_module(module), func)()
    return model


def _as_embedder(model: Any) -> nn.Module:
    """Drop the classifier: facenet returns its normalised embedding, a ResNet its pooled
    features."""
    if hasattr(model, "classify"):
        model.classify = False
    elif isinstance(getattr(model, "fc", None), nn.Linear):
        model.fc = nn.Identity()
    return model


def _load_scripted(path: Path) -> nn.Module:
    try:
        model: nn.Module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise DataError(
            f"not a TorchScript model ({type(err).__name__}: {str(err).splitlines()[0]})",
            path=path,
            fix="save the face model with torch.jit.save(torch.jit.script(model), path), or "
            "choose another cache.face_encoder",
        ) from None
    return model


class FaceEncoder:
    """Frozen face network: `encode(frames)` -> (N, E) float16 embeddings."""

    def __init__(
        self, spec: FaceEncoderSpec, weights: str | Path, device: str = "cpu", batch: int = 64
    ):
        self.spec = spec
        self.device = torch.device(device)
        self.batch = batch
        if spec.filename is None:
            model = _load_scripted(Path(weights))
        else:
            fix = (
                f"point cache.encoder_weights (or the file in torch's cache) at the {spec.name} "
                f"weights ({spec.filename}), or choose the cache.face_encoder they belong to"
            )
            model = _as_embedder(load_into(build_model(spec), weights, what=spec.name, fix=fix))
        for p in model.parameters():  # (ScriptModules have no requires_grad_)
            p.requires_grad_(False)
        self.model = model.eval().to(self.device)
        self._mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1)
        self.dim = spec.dim or self._probe_dim()

    def _probe_dim(self) -> int:
        side = self.spec.input_size
        with torch.inference_mode():
            out = self._forward(np.zeros((1, side, side, 3), np.uint8))
        return int(out.shape[-1])

    def _forward(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        side = self.spec.input_size
        if x.shape[-2:] != (side, side):
            x = nn.functional.interpolate(
                x, size=(side, side), mode="bilinear", align_corners=False, antialias=True
            )
        out: torch.Tensor = self.model((x - self._mean) / self._std)
        return out.reshape(len(frames), -1)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB faces -> (N, E) float16, in batches of `batch`."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, S, S, 3) RGB, got {frames.shape}")
        if len(frames) == 0:
            return np.zeros((0, self.dim), np.float16)
        out = []
        with torch.inference_mode():
            for i in range(0, len(frames), self.batch):
                out.append(self._forward(frames[i : i + self.batch]).to(torch.float16).cpu())
        return torch.cat(out).numpy()

"""RetinaFace-ResNet50 (retinaface-pytorch's network) with batched decoding and NMS.

Only `retinaface.network`, `retinaface.prior_box` and `retinaface.box_utils` are imported (the
package's predict_single needs albumentations). Weights come from a local file or a one-time
download into `align.weights_cache`; the ResNet backbone never fetches ImageNet weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from aver.config import AlignConfig, DownloadConfig
from aver.errors import ConfigError
from aver.faces.detection import Detections
from aver.io.state_dict import load_into
from aver.io.state_dict import load_state_dict as read_state_dict

DEFAULT_NAME = "retinaface_resnet50.pth"
KNOWN_URL = (
    "https://github.com/ternaus/retinaface/releases/download/0.01/"
    "retinaface_resnet50_2020-07-20-f168fae3c.zip"
)
MIN_SIZES = [[16, 32], [64, 128], [256, 512]]
STEPS = [8, 16, 32]
VARIANCE = [0.1, 0.2]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def build_network() -> torch.nn.Module:
    """RetinaFace-ResNet50 with random weights (no ImageNet download)."""
    from retinaface.network import RetinaFace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation
        return RetinaFace(
            name="Resnet50",
            pretrained=False,
            return_layers={"layer2": 1, "layer3": 2, "layer4": 3},
            in_channels=256,
            out_channels=256,
        )


def _fix(path: Path) -> str:
    return (
        f"replace {path} with a RetinaFace-ResNet50 state dict (.pth), point "
        "align.retinaface_weights at one, or use align.detector: mtcnn"
    )


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict saved plainly, under `state_dict`, with a `module.` prefix, or zipped."""
    return read_state_dict(path, fix=_fix(Path(path)))


def resolve_weights(cfg: AlignConfig, dl: DownloadConfig | None = None) -> Path:
    """Local weights path: align.retinaface_weights, the cache, or a verified one-time download.

    A file already in the cache that verifies is used without any request. Without
    align.retinaface_sha256 the download is pinned on first use in a lock file beside it
    (`<weights_cache>/downloads.lock.json`) and verified against it afterwards.
    """
    dl = dl or DownloadConfig()
    cache = Path(cfg.weights_cache).expanduser()
    if cfg.retinaface_weights:
        path = Path(cfg.retinaface_weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                "RetinaFace weights file not found (align.retinaface_weights)",
                path=path,
                fix="put the RetinaFace-ResNet50 .pth there, correct align.retinaface_weights, "
                "or use align.detector: mtcnn (no download needed)",
            )
        return path
    if cfg.retinaface_url:
        dest = cache / (Path(urlparse(cfg.retinaface_url).path).name or DEFAULT_NAME)
        from aver.io.weights import fetch_once

        return fetch_once(
            cfg.retinaface_url,
            dest,
            sha256=cfg.retinaface_sha256,
            what="RetinaFace weights",
            fix=f"copy the weights file to {dest} (offline), or set "
            "align.retinaface_weights to a local .pth, or use align.detector: mtcnn",
            **dl.transfer_kwargs(),
        ).path
    default = cache / DEFAULT_NAME
    if default.is_file():
        return default
    raise ConfigError(
        "align.detector is 'retinaface' but no RetinaFace weights are available",
        path=default,
        fix=f"put a RetinaFace-ResNet50 state dict at {default}, or set "
        "align.retinaface_weights to a local .pth, or set align.retinaface_url (and "
        f"align.retinaface_sha256) to download it once (e.g. {KNOWN_URL}); "
        "or use align.detector: mtcnn, whose weights ship with facenet-pytorch",
    )


def from_config(cfg: AlignConfig, device: str) -> RetinaFaceDetector:
    """The detector `align.detector: retinaface` names (weights per align.retinaface_*)."""
    return RetinaFaceDetector(resolve_weights(cfg), device=device)


class RetinaFaceDetector:
    """Batched RetinaFace: one forward pass per batch of equal-size RGB frames."""

    def __init__(
        self,
        weights: str | Path,
        device: str = "cpu",
        score_threshold: float = 0.7,
        nms_threshold: float = 0.4,
    ):
        self.device = torch.device(device)
        self.net = build_network()
        load_into(self.net, weights, what="RetinaFace-ResNet50", fix=_fix(Path(weights)))
        self.net.eval().to(self.device)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1) * 255
        self._priors: dict[tuple[int, int], torch.Tensor] = {}

    def _prior(self, h: int, w: int) -> torch.Tensor:
        from retinaface.prior_box import priorbox

        if (h, w) not in self._priors:
            self._priors[(h, w)] = priorbox(MIN_SIZES, STEPS, False, (h, w)).to(self.device)
        return self._priors[(h, w)]

    @torch.no_grad()
    def detect(self, frames: list[np.ndarray], min_size: float | None = None) -> list[Detections]:
        """`min_size` is not used: RetinaFace's cost does not depend on the sizes sought."""
        from retinaface.box_utils import decode, decode_landm
        from torchvision.ops import nms

        if not frames:
            return []
        h, w = frames[0].shape[:2]
        x = torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        loc, conf, land = self.net(x)
        priors = self._prior(h, w)
        scale = torch.tensor([w, h], dtype=torch.float32, device=self.device)
        scores = torch.softmax(conf, dim=-1)[..., 1]
        out = []
        for i in range(len(frames)):
            keep = scores[i] > self.score_threshold
            if not bool(keep.any()):
                out.append(Detections.empty())
                continue
            boxes = decode(loc[i][keep], priors[keep], VARIANCE) * scale.repeat(2)
            marks = decode_landm(land[i][keep], priors[keep], VARIANCE).view(-1, 5, 2) * scale
            s = scores[i][keep]
            k = nms(boxes, s, self.nms_threshold)
            out.append(
                Detections(
                    boxes[k].cpu().numpy().astype(np.float32),
                    s[k].cpu().numpy().astype(np.float32),
                    marks[k].cpu().numpy().astype(np.float32),
                )
            )
        return out

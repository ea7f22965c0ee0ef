"""MTCNN (Zhang et al. 2016) with facenet-pytorch's weights, run without importing facenet-pytorch
or torchvision (aver.faces.mtcnn_nets): the same boxes, scores and landmarks as
`facenet_pytorch.MTCNN(keep_all=True).detect`, seconds less start-up, crops resampled at once."""

from __future__ import annotations

import numpy as np
import torch

from aver.config import AlignConfig
from aver.faces import mtcnn_stages as st
from aver.faces.detection import Detections
from aver.faces.mtcnn_nets import load_nets

THRESHOLDS = (0.6, 0.7, 0.7)  # p(face) each net must give a candidate
FACTOR = 0.709  # pyramid step (side ratio between levels)
CHANNELS_LAST = torch.channels_last
# Frames per P-net pass and crops per R-/O-net pass: small enough that a pass's activations
# stay in cache (several times faster on CPU than one large batch), large enough to batch.
PNET_FRAMES, RNET_CROPS, ONET_CROPS = 4, 128, 32


def from_config(cfg: AlignConfig, device: str) -> MtcnnDetector:
    """The detector `align.detector: mtcnn` names (reads align.min_face)."""
    return MtcnnDetector(device=device, min_face=cfg.min_face)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


class MtcnnDetector:
    """Batched MTCNN over frames of one size; faces ordered largest first."""

    def __init__(self, device: str = "cpu", min_face: int = 20):
        self.device, self.min_face = device, min_face
        self.pnet, self.rnet, self.onet = load_nets(device)

    def detect(self, frames: list[np.ndarray], min_size: float | None = None) -> list[Detections]:
        """Faces of every frame; `min_size`: skip the pyramid levels that only see faces
        smaller than that (fewer pixels and candidates; the same levels as the whole search)."""
        if not frames:
            return []
        batch = np.stack([np.ascontiguousarray(f, dtype=np.uint8) for f in frames])
        with torch.inference_mode():
            images = torch.as_tensor(batch, device=self.device).permute(0, 3, 1, 2).float()
            boxes, image_of = self._propose(images, min_size)
            boxes, image_of = self._refine(images, boxes, image_of)
            boxes, points, image_of = self._output(images, boxes, image_of)
        return _per_frame(len(frames), boxes.cpu().numpy(), points.cpu().numpy(), image_of.cpu())

    def _propose(
        self, images: torch.Tensor, sought: float | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """P-net over the pyramid: square candidate boxes (x1, y1, x2, y2, score)."""
        h, w = images.shape[2:]
        found, owners = [], []
        for scale in st.pyramid(h, w, self.min_face, FACTOR, sought):
            size = (int(h * scale + 1), int(w * scale + 1))
            for first in range(0, len(images), PNET_FRAMES):
                part = images[first : first + PNET_FRAMES]
                level = torch.nn.functional.interpolate(part, size=size, mode="area")
                reg, probs = self.pnet(_normalise(level).contiguous(memory_format=CHANNELS_LAST))
                boxes, image_of = st.pnet_boxes(reg, probs[:, 1], scale, THRESHOLDS[0])
                keep = st.batched_nms(boxes, image_of, 0.5)
                found.append(boxes[keep])
                owners.append(image_of[keep] + first)
        boxes, image_of = torch.cat(found), torch.cat(owners)
        keep = st.batched_nms(boxes, image_of, 0.7)
        boxes, image_of = boxes[keep], image_of[keep]
        moved = st.square(st.regress(boxes, boxes[:, 5:9], plus=0.0))
        return torch.cat([moved, boxes[:, 4:5]], dim=1), image_of

    def _crops(
        self, images: torch.Tensor, boxes: torch.Tensor, image_of: torch.Tensor, size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised size x size crops of the boxes that overlap the frame, and those boxes."""
        h, w = images.shape[2:]
        bounds = st.crop_bounds(boxes, w, h)
        ok = (bounds[:, 1] > bounds[:, 0]) & (bounds[:, 3] > bounds[:, 2])
        boxes, image_of, bounds = boxes[ok], image_of[ok], bounds[ok]
        return _normalise(st.resample_crops(images, bounds, image_of, size)), boxes, image_of

    def _refine(
        self, images: torch.Tensor, boxes: torch.Tensor, image_of: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """R-net on 24x24 crops: the candidates it keeps, regressed and squared."""
        if not len(boxes):
            return boxes, image_of
        crops, boxes, image_of = self._crops(images, boxes, image_of, 24)
        reg, probs = _in_batches(self.rnet, crops, RNET_CROPS)
        score = probs[:, 1]
        ok = score > THRESHOLDS[1]
        boxes = torch.cat([boxes[ok, :4], score[ok, None]], dim=1)
        image_of, reg = image_of[ok], reg[ok]
        keep = st.batched_nms(boxes, image_of, 0.7)
        boxes, image_of, reg = boxes[keep], image_of[keep], reg[keep]
        return torch.cat([st.square(st.regress(boxes, reg)), boxes[:, 4:5]], dim=1), image_of

    def _output(
        self, images: torch.Tensor, boxes: torch.Tensor, image_of: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """O-net on 48x48 crops: final boxes (x1, y1, x2, y2, score), landmarks (n, 5, 2)."""
        if not len(boxes):
            return boxes.reshape(0, 5), torch.zeros(0, 5, 2), image_of
        crops, boxes, image_of = self._crops(images, boxes, image_of, 48)
        reg, marks, probs = _in_batches(self.onet, crops, ONET_CROPS)
        score = probs[:, 1]
        ok = score > THRESHOLDS[2]
        boxes, image_of, reg, marks = boxes[ok], image_of[ok], reg[ok], marks[ok]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        px = w * marks[:, :5] + boxes[:, 0:1] - 1
        py = h * marks[:, 5:] + boxes[:, 1:2] - 1
        points = torch.stack([px, py], dim=2)
        boxes = torch.cat([st.regress(boxes, reg), score[ok, None]], dim=1)
        keep = st.batched_nms(boxes, image_of, 0.7, method="min")
        return boxes[keep], points[keep], image_of[keep]


def _in_batches(net: torch.nn.Module, crops: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
    outs = [
        net(crops[i : i + n].contiguous(memory_format=CHANNELS_LAST))
        for i in range(0, len(crops), n)
    ]
    return tuple(torch.cat(parts) for parts in zip(*outs))


def _per_frame(
    n: int, boxes: np.ndarray, points: np.ndarray, image_of: torch.Tensor
) -> list[Detections]:
    """One Detections per frame, largest face first."""
    out = []
    owner = image_of.numpy()
    for i in range(n):
        rows = np.flatnonzero(owner == i)
        if not len(rows):
            out.append(Detections.empty())
            continue
        b = boxes[rows]
        order = np.argsort((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[::-1]  # as facenet
        out.append(
            Detections(
                b[order, :4].astype(np.float32),
                b[order, 4].astype(np.float32),
                points[rows][order].astype(np.float32).reshape(-1, 5, 2),
            )
        )
    return out

"""MTCNN's box arithmetic between its nets: pure tensor functions (ported from facenet-pytorch's
`detect_face`, MIT licence, with the same numbers; the per-box crop loop is vectorised).

Boxes are float (n, 4+) tensors x1, y1, x2, y2[, score, ...] in the detection frame's pixels.
"""

from __future__ import annotations

import numpy as np
import torch

STRIDE, CELL = 2, 12  # P-net: one 12x12 window every 2 pixels of a pyramid level


def pyramid(
    h: int, w: int, min_face: int, factor: float, sought: float | None = None
) -> list[float]:
    """Scales at which 12-pixel windows see faces from `min_face` up to the frame's size;
    `sought`: only those that see faces of `sought` pixels or more (one level of margin), the
    same scales as the whole pyramid's coarser end."""
    m = 12.0 / min_face
    side, scales, scale = min(h, w) * m, [], m
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    if sought is not None and sought > min_face:
        finest = 12.0 / (sought * factor)
        scales = [s for s in scales if s <= finest] or scales[-1:]
    return scales


def pnet_boxes(
    reg: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """P-net maps (N, 4, h, w) offsets and (N, h, w) p(face) -> candidate rows
    (x1, y1, x2, y2, score, 4 offsets) and their image indices."""
    mask = probs >= threshold
    where = mask.nonzero()
    score = probs[mask]
    offsets = reg.permute(1, 0, 2, 3)[:, mask].permute(1, 0)
    cell = where[:, 1:].to(reg.dtype).flip(1)  # (x, y) of the window
    q1 = ((STRIDE * cell + 1) / scale).floor()
    q2 = ((STRIDE * cell + CELL) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), offsets], dim=1), where[:, 0]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> list:
    """Greedy non-maximum suppression: the indices kept, in the order they were kept.

    "union" is torchvision.ops.nms: best score first (ties: lower index first), a box is dropped
    when its IoU with a kept one is > threshold, areas (x2-x1)(y2-y1). "min" is facenet-pytorch's
    last step: overlap / the smaller area, +1 pixel areas, boxes taken from the end of numpy's
    default ascending argsort (so equal scores are broken as facenet-pytorch breaks them).
    """
    plus = 1.0 if method == "min" else 0.0
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    order = np.argsort(scores)[::-1] if method == "min" else np.argsort(-scores, kind="stable")
    alive = np.ones(len(order), bool)
    keep = []
    for pos, i in enumerate(order):
        if not alive[pos]:
            continue
        keep.append(int(i))
        rest = order[pos + 1 :]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + plus)
        inter = w * h
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        alive[pos + 1 :] &= overlap <= threshold
    return keep


def batched_nms(
    boxes: torch.Tensor, images: torch.Tensor, threshold: float, method: str = "union"
) -> torch.Tensor:
    """NMS within each image (rows of `boxes`: x1, y1, x2, y2, score, ...).

    "union": kept indices by descending score (ties: lower index first), as
    torchvision.ops.batched_nms. "min": facenet-pytorch's batched_nms_numpy, one pass over all
    images with each image's boxes shifted apart, in the order they were kept.
    """
    if not len(boxes):
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if method == "min":
        shift = images.to(boxes) * (boxes[:, :4].max() + 1)
        moved = (boxes[:, :4] + shift[:, None]).detach().cpu().numpy()
        kept = nms(moved, boxes[:, 4].detach().cpu().numpy(), threshold, method)
        return torch.as_tensor(kept, dtype=torch.long, device=boxes.device)
    b = boxes[:, :5].detach().cpu().numpy()
    idx = images.cpu().numpy()
    keep: list[int] = []
    for image in np.unique(idx):
        rows = np.flatnonzero(idx == image)
        keep.extend(rows[nms(b[rows, :4], b[rows, 4], threshold, method)].tolist())
    ordered = np.sort(np.asarray(keep, np.int64))
    ordered = ordered[np.argsort(-b[ordered, 4], kind="stable")]
    return torch.as_tensor(ordered, device=boxes.device)


def regress(boxes: torch.Tensor, offsets: torch.Tensor, plus: float = 1.0) -> torch.Tensor:
    """Boxes moved by offsets x box size ((x2 - x1 + plus) wide): a new (n, 4) tensor."""
    w = boxes[:, 2] - boxes[:, 0] + plus
    h = boxes[:, 3] - boxes[:, 1] + plus
    size = torch.stack([w, h, w, h], dim=1)
    return boxes[:, :4] + offsets[:, :4] * size


def square(boxes: torch.Tensor) -> torch.Tensor:
    """(n, 4) boxes made square around their centres, side = the longer side."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def crop_bounds(boxes: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """Integer pixel ranges (y0, y1, x0, x1) of the boxes clipped to a w x h frame, as facenet
    crops them (rows y0:y1); rows with an empty range are the caller's to drop."""
    b = boxes[:, :4].trunc().to(torch.int64)
    x0 = b[:, 0].clamp(min=1) - 1
    y0 = b[:, 1].clamp(min=1) - 1
    x1 = b[:, 2].clamp(max=w)
    y1 = b[:, 3].clamp(max=h)
    return torch.stack([y0, y1, x0, x1], dim=1)


def _bins(start: torch.Tensor, length: torch.Tensor, out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-average-pool bin edges ((n, out) each) of ranges [start, start + length)."""
    a = torch.arange(out, device=start.device)
    lo = torch.div(a * length[:, None], out, rounding_mode="floor")
    hi = torch.div((a + 1) * length[:, None] + out - 1, out, rounding_mode="floor")
    return start[:, None] + lo, start[:, None] + hi


def resample_crops(
    images: torch.Tensor, bounds: torch.Tensor, image_of: torch.Tensor, size: int
) -> torch.Tensor:
    """Each crop (y0, y1, x0, x1) of images[image_of] (N, 3, H, W) resized to size x size by
    area averaging (= `F.interpolate(mode="area")` per crop), from one integral image per frame
    over the region its crops span (exact integer sums)."""
    out = torch.empty(len(bounds), images.shape[1], size, size, device=images.device)
    if not len(bounds):
        return out
    r0, r1 = _bins(bounds[:, 0], bounds[:, 1] - bounds[:, 0], size)
    c0, c1 = _bins(bounds[:, 2], bounds[:, 3] - bounds[:, 2], size)
    area = (r1 - r0)[:, :, None] * (c1 - c0)[:, None, :]
    for image in torch.unique(image_of).tolist():
        rows = (image_of == image).nonzero().squeeze(1)
        top, left = int(bounds[rows, 0].min()), int(bounds[rows, 2].min())
        bottom, right = int(bounds[rows, 1].max()), int(bounds[rows, 3].max())
        region = images[image, :, top:bottom, left:right]
        wide = torch.int64 if region[0].numel() * 255 >= 2**31 else torch.int32
        s = torch.nn.functional.pad(region.to(wide), (1, 0, 1, 0)).cumsum(1).cumsum(2)
        # s[:, y, x]: the sum of the region's pixels above and left of (y, x)
        a0, a1 = r0[rows][:, :, None] - top, r1[rows][:, :, None] - top
        b0, b1 = c0[rows][:, None, :] - left, c1[rows][:, None, :] - left
        total = s[:, a1, b1] - s[:, a0, b1] - s[:, a1, b0] + s[:, a0, b0]  # (3, k, size, size)
        out[rows] = (total.to(torch.float64) / area[rows]).permute(1, 0, 2, 3).to(out.dtype)
    return out

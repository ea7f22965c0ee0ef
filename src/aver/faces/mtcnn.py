"""MTCNN (facenet-pytorch; its weights ship in the wheel, so it works offline)."""

from __future__ import annotations

import numpy as np

from aver.faces.detection import Detections


class MtcnnDetector:
    """facenet_pytorch.MTCNN with keep_all=True; one forward pass per batch of equal-size frames."""

    def __init__(self, device: str = "cpu", min_face: int = 20):
        from facenet_pytorch import MTCNN

        self.model = MTCNN(keep_all=True, min_face_size=min_face, device=device).eval()

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        batch = np.stack([np.ascontiguousarray(f, dtype=np.uint8) for f in frames])
        boxes, probs, points = self.model.detect(batch, landmarks=True)
        out = []
        for b, p, pts in zip(boxes, probs, points):
            if b is None:
                out.append(Detections.empty())
                continue
            out.append(
                Detections(
                    np.asarray(b, np.float32).reshape(-1, 4),
                    np.asarray(p, np.float32).reshape(-1),
                    np.asarray(pts, np.float32).reshape(-1, 5, 2),
                )
            )
        return out

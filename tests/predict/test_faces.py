"""aver.predict.faces: the streamed detect-track-align gives the align stage's faces."""

from __future__ import annotations

import numpy as np

from aver.config import AlignConfig
from aver.faces.pipeline import align_clip
from aver.predict.faces import aligned_faces, track_clip
from tests.faces.conftest import moving_face, write_video


def test_streamed_faces_equal_the_align_stage_faces(tmp_path):
    """Same sparse detection (fewer searches on a still face), track and warps, frame by frame."""
    from aver.faces.mtcnn import MtcnnDetector

    video = write_video(tmp_path / "clip.mp4", moving_face(60))
    cfg = AlignConfig(max_skip=4)
    det = MtcnnDetector(device="cpu")
    stage = align_clip(video, cfg, det)  # keep_fps None: every sampled frame
    assert stage.arrays is not None
    clip = track_clip(video, cfg, det)
    streamed = list(aligned_faces(video, cfg, clip))
    assert clip.detection_rate == stage.detection_rate > 0.9
    assert len(streamed) == len(stage.arrays["frames"]) == clip.n_frames
    np.testing.assert_array_equal(np.stack([f for _, f, _ in streamed]), stage.arrays["frames"])
    np.testing.assert_array_equal([d for _, _, d in streamed], stage.arrays["detected"])
    np.testing.assert_allclose([t for t, _, _ in streamed], stage.arrays["times"])

"""Align on the real clips (after extract): the speaker's face is found and put on the template.

CREMA-D (VP6 flv, 480x360) and RAVDESS (1280x720 mp4) actors face the camera throughout, so the
face is detected in (nearly) every sampled frame; re-detecting landmarks on an aligned crop
checks the warp put the real face where the template says.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aver.config import AlignConfig
from aver.faces.alignment import template
from aver.faces.pipeline import align_clip
from tests.support.real_clips import clip_ids

CFG = AlignConfig()


@pytest.mark.parametrize("clip_id", clip_ids())
def test_real_clip_face_is_found_and_aligned(real_extracted, mtcnn, clip_id):
    row, _, video = real_extracted[clip_id]
    clip = align_clip(video, CFG, mtcnn)
    assert clip.detection_rate >= 0.95, clip.detection_rate
    assert clip.arrays is not None
    frames = clip.arrays["frames"]
    assert frames.shape == (row["n_frames"], CFG.size, CFG.size, 3)
    assert clip.arrays["detected"].mean() >= 0.95
    pad = CFG.size // 2
    errors = []
    for i in (len(frames) // 4, len(frames) // 2, 3 * len(frames) // 4):
        padded = cv2.copyMakeBorder(frames[i], pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = mtcnn.detect([padded])[0]
        assert len(found) >= 1, f"no face in aligned frame {i}"
        marks = found.landmarks[0] - pad
        errors.append(np.linalg.norm(marks - template(CFG.size), axis=1).mean())
    # measured: 0.4-2.6 px on every clip, one frame of a CREMA-D smile at 4.2 px
    assert np.mean(errors) < 3.0 and max(errors) < 5.0, errors

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
from aver.faces.quality import template_error
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


# Before the single-pass, sparse-detection align (commit 04ee56c's align_clip: two decoding
# passes, detection on every align.detect_every-th frame), measured once on these clips with
# aver.faces.quality.template_error: clip -> (detection rate, mean landmark error px, 7 crops).
BEFORE = {
    "01-01-01-01-01-01-01": (1.0, 1.29), "01-01-01-01-01-01-09": (1.0, 1.43),
    "01-01-04-01-01-01-05": (1.0, 1.09), "01-01-04-01-01-01-09": (1.0, 1.88),
    "01-01-06-01-01-01-05": (1.0, 1.38), "01-01-06-01-01-01-09": (1.0, 2.23),
    "01-01-08-01-01-01-03": (1.0, 1.28), "01-01-08-01-01-01-04": (1.0, 0.91),
    "01-01-08-01-01-01-06": (1.0, 1.20), "01-01-08-01-01-01-09": (1.0, 1.71),
    "01-01-08-01-01-01-10": (1.0, 1.10), "1001_DFA_ANG_XX": (1.0, 1.36),
    "1001_DFA_DIS_XX": (1.0, 1.69), "1001_DFA_FEA_XX": (1.0, 1.89),
    "1001_DFA_HAP_XX": (1.0, 2.80), "1001_DFA_NEU_XX": (1.0, 1.46),
    "1001_DFA_SAD_XX": (1.0, 1.45),
}  # fmt: skip
BEFORE_MEAN_ERROR = 1.538  # mean over the 17 clips


def test_detection_rate_and_landmark_error_are_no_worse_than_before(real_extracted, mtcnn):
    errors = {}
    for clip_id, (_, _, video) in real_extracted.items():
        clip = align_clip(video, CFG, mtcnn)
        assert clip.arrays is not None, clip_id
        rate, error = BEFORE[clip_id]
        assert clip.detection_rate >= rate - 1e-9, (clip_id, clip.detection_rate)
        found = template_error(clip.arrays["frames"], mtcnn)
        assert not np.isnan(found).any(), (clip_id, found)  # a face in every aligned crop
        errors[clip_id] = float(np.mean(found))
        assert errors[clip_id] <= error + 0.75, (clip_id, errors[clip_id], error)  # one clip
    # measured after: mean 1.54 px (max per-clip rise 0.26 px)
    assert np.mean(list(errors.values())) <= BEFORE_MEAN_ERROR + 0.1, errors

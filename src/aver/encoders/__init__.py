"""Pretrained encoders that turn audio and faces into cached embeddings (torch-free on import).

`AUDIO_ENCODERS` and `FACE_ENCODERS` register each encoder once with its geometry and where its
weights come from; `cache.audio_encoder` / `cache.face_encoder` accept exactly their names (plus
the from-scratch inputs `logmel`/`mfcc` and `crops`). aver.config reads this package, so it
stays light: the torch modules (`aver.encoders.audio`, `aver.encoders.face`) load when an
encoder is built (`aver.encoders.loading.load_encoders`).
"""

from __future__ import annotations

from aver.encoders.specs import (
    AUDIO_ENCODERS,
    AUDIO_FEATURES,
    FACE_CROPS,
    FACE_ENCODERS,
    AudioEncoderSpec,
    FaceEncoderSpec,
)

__all__ = [
    "AUDIO_ENCODERS",
    "AUDIO_FEATURES",
    "FACE_CROPS",
    "FACE_ENCODERS",
    "AudioEncoderSpec",
    "FaceEncoderSpec",
]

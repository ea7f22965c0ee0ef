"""Models: AVT-CA (+ Table V ablations), MSAN (TaRoPE, CTM), unimodal and late-fusion baselines.

`build_model(cfg, n_classes=, audio_dim=, face_size=)` builds the network `cfg.name` names; every
model maps the "Model batch" dict to `ModelOutput(logits, aux_losses)`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from aver.config import ModelConfig
from aver.errors import ConfigError
from aver.models.avtca import AVTCA, VARIANTS
from aver.models.baselines import LateFusion, UnimodalNet, audio_only, video_only
from aver.models.losses import ctm_loss
from aver.models.msan import MSAN, MSANCore
from aver.models.output import ModelOutput

Builder = Callable[..., nn.Module]

MODELS: dict[str, Builder] = {
    "avtca": AVTCA,
    "msan": MSAN,
    "audio_only": audio_only,
    "video_only": video_only,
    "late_fusion": LateFusion,
}


def build_model(cfg: ModelConfig, *, n_classes: int, audio_dim: int, face_size: int) -> nn.Module:
    """The network `cfg.name` names, for inputs of `audio_dim` features and `face_size` faces."""
    if cfg.name not in MODELS:
        raise ConfigError(
            f"unknown model {cfg.name!r}", fix=f"set train.model.name to one of {sorted(MODELS)}"
        )
    if n_classes < 2:
        raise ConfigError(f"need at least 2 classes, got {n_classes}", fix="check the dataset")
    if face_size < 2 * cfg.video_stride * cfg.video_patches:
        raise ConfigError(
            f"face_size={face_size} is too small for video_stride={cfg.video_stride} and "
            f"video_patches={cfg.video_patches}",
            fix="lower train.model.video_stride / video_patches or cache larger faces "
            "(cache.face_size)",
        )
    return MODELS[cfg.name](cfg, n_classes=n_classes, audio_dim=audio_dim, face_size=face_size)


__all__ = [
    "AVTCA",
    "MODELS",
    "MSAN",
    "VARIANTS",
    "LateFusion",
    "MSANCore",
    "ModelOutput",
    "UnimodalNet",
    "build_model",
    "ctm_loss",
]

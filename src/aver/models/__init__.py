"""Models: AVT-CA (+ Table V ablations), MSAN (TaRoPE, CTM), unimodal and late-fusion baselines.

`MODEL_CONFIGS` registers every model once: name -> (its config class, "module:builder"). The
`train.model` validation (`ModelConfig`, `model_config`), the builders (`MODELS`, `build_model`)
and the parametrised tests derive from it. This package stays torch-free on import (aver.config
imports it); the torch modules load when a model is built or a class below is asked for.

`build_model(cfg, n_classes=, audio_dim=, face_size=, audio_layers=, video_dim=)` builds the
network `cfg.name` names for those input sizes (`InputDims`, from the cache's array shapes; they
choose the front-ends: log-mel frames or encoder layers, face crops or face embeddings); every
model maps the "Model batch" dict to `ModelOutput(logits, aux_losses)`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from aver.errors import ConfigError
from aver.models.avtca_config import VARIANTS, AVTCAConfig
from aver.models.baselines_config import AudioOnlyConfig, LateFusionConfig, VideoOnlyConfig
from aver.models.msan_config import MSANConfig
from aver.models.spec import InputDims, ModelConfigBase, TokenModelConfig

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

# name -> (config class, "module:builder"); the one list of models.
MODEL_CONFIGS: dict[str, tuple[type[ModelConfigBase], str]] = {
    "avtca": (AVTCAConfig, "aver.models.avtca:AVTCA"),
    "msan": (MSANConfig, "aver.models.msan:MSAN"),
    "audio_only": (AudioOnlyConfig, "aver.models.baselines:audio_only"),
    "video_only": (VideoOnlyConfig, "aver.models.baselines:video_only"),
    "late_fusion": (LateFusionConfig, "aver.models.baselines:LateFusion"),
}
DEFAULT_MODEL = "msan"

if TYPE_CHECKING:
    ModelConfig = ModelConfigBase
else:  # the discriminated union of the registered config classes, keyed by `name`
    ModelConfig = Annotated[
        Union[tuple(cls for cls, _ in MODEL_CONFIGS.values())],  # noqa: UP007
        Field(discriminator="name"),
    ]

_logged: set[str] = set()  # info lines already logged by this process (params validate often)


def model_keys(name: str) -> set[str]:
    """The keys the config of model `name` accepts."""
    return set(MODEL_CONFIGS[name][0].model_fields)


def all_model_keys() -> set[str]:
    """Keys that some registered model accepts under train.model."""
    return {key for name in MODEL_CONFIGS for key in model_keys(name)}


def select_model_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`raw` (train.model as written) with `name` filled in and other models' keys dropped.

    A key of another model (params.yaml holds msan and avtca keys side by side) is dropped with
    one INFO line; a key no model has, or an unknown name, is a ValueError naming the valid ones.
    """
    data = {"name": DEFAULT_MODEL, **raw}
    name = data["name"]
    if name not in MODEL_CONFIGS:
        raise ValueError(
            f"train.model.name: {name!r} is not allowed; valid choices: "
            f"{', '.join(repr(n) for n in MODEL_CONFIGS)}"
        )
    own, known = model_keys(name), all_model_keys()
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ValueError(
            f"train.model.{unknown[0]}: unknown key; keys of model {name}: {', '.join(sorted(own))}"
        )
    dropped = sorted(str(k) for k in data if k not in own)
    if dropped:
        msg = f"train.model: model {name} does not use {', '.join(dropped)} (ignored)"
        if msg not in _logged:
            _logged.add(msg)
            log.info(msg)
    return {k: v for k, v in data.items() if k in own}


def model_config(**raw: Any) -> ModelConfig:
    """The validated config of model `raw["name"]` (default msan); other models' keys dropped."""
    data = select_model_keys(raw)
    return MODEL_CONFIGS[data["name"]][0].model_validate(data)


def _builder(name: str) -> Callable[..., nn.Module]:
    module, attr = MODEL_CONFIGS[name][1].split(":")
    builder: Callable[..., nn.Module] = getattr(importlib.import_module(module), attr)
    return builder


def build_model(
    cfg: ModelConfig,
    *,
    n_classes: int,
    audio_dim: int,
    face_size: int,
    audio_layers: int = 0,
    video_dim: int = 0,
) -> nn.Module:
    """The network `cfg.name` names, for the input sizes of `InputDims` (0 = not used): audio
    frames of `audio_dim` features, or `audio_layers` encoder layers of `audio_dim` dims; face
    crops of `face_size` pixels, or face embeddings of `video_dim` dims."""
    if cfg.name not in MODEL_CONFIGS:
        raise ConfigError(
            f"unknown model {cfg.name!r}",
            fix=f"set train.model.name to one of {sorted(MODEL_CONFIGS)}",
        )
    if n_classes < 2:
        raise ConfigError(f"need at least 2 classes, got {n_classes}", fix="check the dataset")
    try:
        dims = InputDims(audio_dim, face_size, audio_layers, video_dim)
    except ValueError as err:
        raise ConfigError(str(err), fix="rebuild the feature cache (dvc repro cache)") from None
    if not dims.video_embeddings and face_size < 2 * cfg.video_stride * cfg.video_patches:
        raise ConfigError(
            f"face_size={face_size} is too small for video_stride={cfg.video_stride} and "
            f"video_patches={cfg.video_patches}",
            fix="lower train.model.video_stride / video_patches or cache larger faces "
            "(cache.face_size)",
        )
    builder = _builder(cfg.name)
    return builder(cfg, n_classes=n_classes, dims=dims)


# Torch classes, imported on first use: name -> "module:attribute".
_LAZY = {
    "AVTCA": "aver.models.avtca:AVTCA",
    "MSAN": "aver.models.msan:MSAN",
    "MSANCore": "aver.models.msan:MSANCore",
    "LateFusion": "aver.models.baselines:LateFusion",
    "UnimodalNet": "aver.models.baselines:UnimodalNet",
    "ModelOutput": "aver.models.output:ModelOutput",
    "ctm_loss": "aver.models.losses:ctm_loss",
}


def __getattr__(attr: str) -> Any:
    if attr == "MODELS":  # name -> builder (imports torch)
        return {name: _builder(name) for name in MODEL_CONFIGS}
    if attr in _LAZY:
        module, name = _LAZY[attr].split(":")
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = [
    "AVTCA",
    "MODELS",
    "MODEL_CONFIGS",
    "MSAN",
    "VARIANTS",
    "AVTCAConfig",
    "AudioOnlyConfig",
    "InputDims",
    "LateFusion",
    "LateFusionConfig",
    "MSANConfig",
    "MSANCore",
    "ModelConfig",
    "ModelConfigBase",
    "ModelOutput",
    "TokenModelConfig",
    "UnimodalNet",
    "VideoOnlyConfig",
    "build_model",
    "ctm_loss",
    "model_config",
]

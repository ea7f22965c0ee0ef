"""Checkpoints and model files: atomic torch.save, loaded back with weights_only=True.

Everything stored is tensors or plain Python types (RNG states included), so nothing is
unpickled as code when a file is read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aver.errors import DataError
from aver.io.atomic import atomic_path

MODEL_FORMAT = "aver-model/1"
CHECKPOINT_FORMAT = "aver-checkpoint/1"


def save(path: str | Path, obj: dict[str, Any]) -> None:
    """torch.save to a temp file beside `path`, then rename (never a partial file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """torch.load(weights_only=True); unreadable files raise DataError naming the file."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path, fix="run the train stage (dvc repro train)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt, truncated or holding non-weights objects
        raise DataError(
            f"cannot load ({type(err).__name__}: {str(err)[:200]})",
            path=path,
            fix="delete the file and rerun the stage that writes it",
        ) from None
    if not isinstance(obj, dict):
        raise DataError("expected a dict", path=path)
    return obj


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (and CUDA) as tensors and plain types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_plain(random.getstate()),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    random.setstate(_to_tuple(state["python"]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _to_plain(x: Any) -> Any:
    if isinstance(x, tuple):
        return [_to_plain(v) for v in x]
    return x


def _to_tuple(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_to_tuple(v) for v in x)
    return x


# ---- the trained model file (models/model.pt) ------------------------------------------------


@dataclass(frozen=True)
class TrainedModel:
    """A model ready for inference plus everything needed to prepare its inputs."""

    model: nn.Module
    classes: list[str]
    params: dict[str, Any]  # resolved params (model_dump, JSON types)
    info: dict[str, Any]  # fold, val metrics, feature meta, normalisation stats, run id, ...


def save_model_file(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    *,
    params: dict[str, Any],
    classes: list[str],
    dims: dict[str, int],
    info: dict[str, Any] | None = None,
) -> None:
    """Write model.pt: weights + resolved params + classes + input dims (+ plain-typed info)."""
    save(
        path,
        {
            "format": MODEL_FORMAT,
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
            "params": params,
            "classes": list(classes),
            "dims": {k: int(v) for k, v in dims.items()},
            "info": info or {},
        },
    )


def load_model_file(path: str | Path) -> dict[str, Any]:
    """The raw model.pt dict (weights_only); checks its format tag."""
    obj = load(path)
    if obj.get("format") != MODEL_FORMAT:
        raise DataError(
            f"not an aver model file (format {obj.get('format')!r}, expected {MODEL_FORMAT!r})",
            path=path,
            fix="point at models/model.pt written by the train stage",
        )
    return obj


def load_trained_model(path: str | Path, *, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the network from model.pt's params and load its weights (eval mode).

    Reused by the evaluate stage, the MLflow pyfunc and `aver predict`.
    """
    from aver.config import parse_params
    from aver.models import build_model

    obj = load_model_file(path)
    params = parse_params(obj["params"], f"{path} (params)")
    dims = obj["dims"]
    model = build_model(
        params.train.model,
        n_classes=len(obj["classes"]),
        audio_dim=dims["audio_dim"],
        face_size=dims["face_size"],
    )
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as err:
        raise DataError(
            f"weights do not fit the model its params describe ({str(err)[:300]})",
            path=path,
            fix="retrain (dvc repro train); the model code changed since this file was written",
        ) from None
    model.to(device).eval()
    return TrainedModel(
        model=model,
        classes=list(obj["classes"]),
        params=obj["params"],
        info=dict(obj.get("info", {})),
    )

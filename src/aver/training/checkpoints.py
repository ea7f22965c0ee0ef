"""Checkpoints and model files: atomic torch.save, loaded back with weights_only=True.

Everything stored is tensors or plain Python types (RNG states included), so nothing is
unpickled as code when a file is read.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aver.errors import DataError
from aver.io.atomic import atomic_path
from aver.model_card import ModelCard, read_card

MODEL_FORMAT = "aver-model/2"  # weights + model card JSON (aver.model_card)
MODEL_FORMAT_V1 = "aver-model/1"  # weights + whole Params dump + classes + dims + info
MODEL_FORMATS = (MODEL_FORMAT, MODEL_FORMAT_V1)
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
class ModelFile:
    """What model.pt holds: the weights and the model card."""

    state_dict: dict[str, torch.Tensor]
    card: ModelCard


def save_model_file(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], card: ModelCard
) -> None:
    """Write model.pt: weights + the model card as JSON (nothing pickled)."""
    save(
        path,
        {
            "format": MODEL_FORMAT,
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
            "card": card.to_json(),
        },
    )


def load_model_file(path: str | Path) -> dict[str, Any]:
    """The raw model.pt dict (weights_only); checks its format tag (this one or older)."""
    obj = load(path)
    if obj.get("format") not in MODEL_FORMATS:
        raise DataError(
            f"not an aver model file (format {obj.get('format')!r}, expected {MODEL_FORMAT!r})",
            path=path,
            fix="point at models/model.pt written by the train stage",
        )
    return obj


def read_model_file(path: str | Path) -> ModelFile:
    """Weights and card of model.pt; files from before the card (aver-model/1) are converted."""
    obj = load_model_file(path)
    raw = obj if obj["format"] == MODEL_FORMAT_V1 else obj.get("card")
    if raw is None:
        raise DataError("model file without a card", path=path, fix="retrain (dvc repro train)")
    return ModelFile(dict(obj["state_dict"]), read_card(raw, f"{path} (model card)"))

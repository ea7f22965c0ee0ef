"""Inference: device choice, moving batches, batching, window slicing, softmax, trained models.

One module for running a trained network, used by the evaluate stage (`predict` over a test
loader), `aver predict` (`class_probabilities` of per-clip cache arrays, windows of long clips)
and the MLflow pyfunc (`probabilities` of a model batch); the training loop uses the same
device and batch helpers. `load_trained_model` rebuilds the network from model.pt's card.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from aver.errors import AverError, DataError
from aver.features.window import shift_faces as shift_faces  # re-exported
from aver.progress import bar as progress_bar
from aver.windows import HOP_S, aggregate_by_clip
from aver.windows import window_starts as window_starts  # re-exported (the rule's home)

if TYPE_CHECKING:
    from aver.config import CacheConfig
    from aver.encoders.loading import Encoders
    from aver.features.stats import FoldStats
    from aver.model_card import ModelCard

BATCH_SIZE = 32
TIMELINE_HOP_S = HOP_S  # the default cache.hop_s (aver.windows)
# loss_fn(model output, labels) -> scalar loss tensor (the training loss, for validation)
LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


# ---- devices and batches ----------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AverError(
            "train.device is 'cuda' but no CUDA device is visible",
            fix="set train.device: auto or cpu",
        )
    return torch.device(name)


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to `device` (non-blocking); other values (clip_id lists) unchanged."""
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a batch (drops clip_id lists, so torch.compile sees only tensors)."""
    return {k: v for k, v in batch.items() if torch.is_tensor(v)}


def autocast(device: torch.device, enabled: bool) -> Any:
    """bf16 (else fp16) autocast on CUDA when `enabled`, else a no-op context."""
    if not enabled:
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def softmax(out: Any) -> torch.Tensor:
    """Class probabilities (float32) of a ModelOutput's logits."""
    return torch.softmax(out.logits.float(), dim=-1)


# ---- running a model --------------------------------------------------------------------------


@dataclass
class Predictions:
    y_true: np.ndarray  # (N,) int
    y_pred: np.ndarray  # (N,) int
    probs: np.ndarray  # (N, C) float
    clip_ids: list[str]
    loss: float  # mean loss_fn over the clips (nan without one)


class EmptyLoader(AverError):
    """The loader yielded no batches."""


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    device: torch.device | str = "cpu",
    *,
    amp: bool = False,
    loss_fn: LossFn | None = None,
    desc: str | None = None,
    progress: bool = False,
) -> Predictions:
    """Run `model` in eval mode over labelled batches; labels, argmax, softmax (and loss), per
    clip: the windows of a clip (rows with its clip id) are aggregated (`per_clip`). Outputs
    stay on the device until the pass ends (no host sync per batch)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    ys, probs, losses, ids = [], [], [], []
    n = 0
    for batch in progress_bar(loader, desc=desc, leave=False, disable=not progress):
        batch = move_batch(batch, device)
        with autocast(device, amp and device.type == "cuda"):
            out = model(model_inputs(batch))
        labels = batch["label"]
        if loss_fn is not None:
            losses.append(loss_fn(out, labels).detach().float() * len(labels))
        n += len(labels)
        ys.append(labels)
        probs.append(softmax(out))
        ids.extend(batch.get("clip_id", [""] * len(labels)))
    model.train(was_training)
    if n == 0:
        raise EmptyLoader(
            "the data loader yielded no batches",
            fix="check the split has clips (data/features/index.csv)",
        )
    p = torch.cat(probs).cpu()
    loss_sum = float(torch.stack(losses).cpu().double().sum()) if losses else float("nan")
    pred = Predictions(
        y_true=torch.cat(ys).cpu().numpy(),
        y_pred=p.argmax(dim=-1).numpy(),
        probs=p.numpy(),
        clip_ids=list(ids),
        loss=loss_sum / n,
    )
    return per_clip(pred)


def per_clip(pred: Predictions) -> Predictions:
    """Window predictions -> clip predictions: the rows sharing a clip id (the windows of one
    clip) become one row, its probabilities the aver.windows AGGREGATE (their mean) and its
    prediction the argmax of that. Rows without a clip id, or all distinct, are kept as they
    are; `loss` stays the mean over windows."""
    ids = pred.clip_ids
    if not ids or "" in ids or len(set(ids)) == len(ids):
        return pred
    clip_ids, probs, first = aggregate_by_clip(pred.probs, ids)
    return Predictions(
        y_true=pred.y_true[first],
        y_pred=probs.argmax(axis=1),
        probs=probs,
        clip_ids=clip_ids,
        loss=pred.loss,
    )


@torch.no_grad()
def probabilities(model: nn.Module, batch: Mapping[str, Any]) -> np.ndarray:
    """(B, C) float32 softmax of `model` (eval mode) on one model batch, on its device."""
    device = next(model.parameters()).device
    model.eval()
    return softmax(model(model_inputs(move_batch(batch, device)))).cpu().numpy()


def class_probabilities(
    model: nn.Module,
    clips: Sequence[Mapping[str, np.ndarray]],
    stats: FoldStats,
    batch_size: int = BATCH_SIZE,
) -> np.ndarray:
    """(N, C) float64 probabilities for per-clip cache arrays, normalised with `stats`."""
    from aver.features import batch_from_arrays

    out = [
        probabilities(model, batch_from_arrays(clips[i : i + batch_size], stats)).astype(np.float64)
        for i in range(0, len(clips), batch_size)
    ]
    probs = np.concatenate(out)
    return probs / probs.sum(axis=1, keepdims=True)


# ---- windows of long clips --------------------------------------------------------------------
# The window rule (positions, aggregate) is aver.windows; the arrays of windows are
# aver.features.window's (the cache stage computes the same ones).


def window_arrays(
    wave: np.ndarray,
    sample_rate: int,
    faces: Mapping[str, np.ndarray],
    start_s: float,
    cfg: CacheConfig,
    target_rate: int,
    encoders: Encoders | None = None,
) -> dict[str, np.ndarray]:
    """clip_features of the cache window starting at `start_s` (times on the video's axis)."""
    first = round(start_s * sample_rate)
    segment = (first / sample_rate, wave[first:])
    return windows_arrays([segment], sample_rate, faces, cfg, target_rate, encoders)[0]


def windows_arrays(
    segments: Sequence[tuple[float, np.ndarray]],
    sample_rate: int,
    faces: Mapping[str, np.ndarray],
    cfg: CacheConfig,
    target_rate: int,
    encoders: Encoders | None = None,
) -> list[dict[str, np.ndarray]]:
    """The cache arrays of several windows, each given as (start_s, waveform from start_s on)
    (`aver.features.window.windows_arrays` with the cache config's window)."""
    from aver.features.window import WindowSpec
    from aver.features.window import windows_arrays as arrays_of

    face_dim = encoders.face_dim if encoders is not None and encoders.face is not None else None
    spec = WindowSpec.from_config(cfg, target_rate, face_dim=face_dim)
    return arrays_of(segments, sample_rate, faces, spec, encoders)


# ---- trained models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedModel:
    """A network ready for inference (eval mode) and the card describing its inputs."""

    model: nn.Module
    card: ModelCard

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)


def load_trained_model(path: str | Path, *, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the network model.pt's card describes and load its weights (eval mode)."""
    from aver.models import build_model
    from aver.training.checkpoints import read_model_file

    file = read_model_file(path)
    card = file.card
    model = build_model(card.network_config(), n_classes=len(card.classes), **card.dims)
    try:
        model.load_state_dict(file.state_dict)
    except RuntimeError as err:
        raise DataError(
            f"weights do not fit the model its card describes ({str(err)[:300]})",
            path=path,
            fix="retrain (dvc repro train); the model code changed since this file was written",
        ) from None
    model.to(device).eval()
    return TrainedModel(model=model, card=card)

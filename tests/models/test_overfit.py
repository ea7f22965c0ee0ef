"""Each model memorises a tiny batch of demo features (100% training accuracy) within a few hundred
steps on CPU.

The batch is eight training clips (two per class) of the feature cache that the session's demo
pipeline (`dvc repro` on a small demo) built: real log-mels and aligned faces, normalised with the
fold's statistics. Every model and variant is trained at the small test size, and every model
family at its default size; each stops as soon as the batch is fitted. On embedding inputs
(encoder layers and face embeddings, which no demo cache holds here) each model memorises a
tiny batch of random embeddings.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aver.features.cache import FeatureCache
from aver.features.loader import batch_from_arrays
from aver.models import MODEL_CONFIGS, ModelConfig, build_model, model_config
from aver.training.folds import cache_dims

from .conftest import INPUTS, N_CLASSES, make_batch, small_cfg

MAX_STEPS, CHECK_EVERY, PER_CLASS = 300, 10, 2


@pytest.fixture(scope="module")
def demo_batch(demo_pipeline) -> tuple[dict, dict[str, int], int]:
    """(batch of 2 train clips per class of fold 0, model input dims, number of classes)."""
    repo, _ = demo_pipeline
    cache = FeatureCache(repo / "data" / "features")
    by_class: dict[int, list[str]] = {}
    for clip_id in cache.split_ids(0, "train"):
        by_class.setdefault(cache.label_idx(clip_id), []).append(clip_id)
    assert len(by_class) == len(cache.classes) >= 4, by_class
    pick = [c for label in sorted(by_class) for c in by_class[label][:PER_CLASS]]
    batch = batch_from_arrays(
        [cache.read(c) for c in pick],
        cache.fold_stats(0),
        labels=[cache.label_idx(c) for c in pick],
        clip_ids=pick,
    )
    return batch, cache_dims(cache), len(cache.classes)


def fit_steps(model: torch.nn.Module, batch: dict, lr: float = 3e-3) -> int | None:
    """Adam on one batch; the step at which eval-mode accuracy first reaches 100%, else None."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    labels = batch["label"]
    for step in range(1, MAX_STEPS + 1):
        model.train()
        out = model(batch)
        loss = F.cross_entropy(out.logits, labels) + sum(out.aux_losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % CHECK_EVERY == 0:
            model.eval()
            with torch.no_grad():
                if (model(batch).logits.argmax(1) == labels).all():
                    return step
    return None


def _check_overfits(cfg: ModelConfig, demo_batch, lr: float) -> None:
    batch, dims, n_classes = demo_batch
    torch.manual_seed(0)
    model = build_model(cfg.model_copy(update={"dropout": 0.0}), n_classes=n_classes, **dims)
    with torch.no_grad():
        start = (model.eval()(batch).logits.argmax(1) == batch["label"]).float().mean()
    assert start < 1.0  # not fitted before training
    steps = fit_steps(model, batch, lr=lr)
    assert steps is not None, f"did not reach 100% training accuracy in {MAX_STEPS} steps"


def test_model_overfits_a_tiny_batch_of_demo_features(case, demo_batch):
    _check_overfits(case[1], demo_batch, lr=3e-3)


@pytest.mark.parametrize("name", ["avtca", "msan", "audio_only", "video_only", "late_fusion"])
def test_default_size_model_overfits_demo_features(name, demo_batch):
    """The default ModelConfig of each family, at the demo cache's input size."""
    _check_overfits(model_config(name=name), demo_batch, lr=1e-3)


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_model_overfits_a_tiny_batch_of_embeddings(name):
    """Nine clips of random speech-encoder layers and face embeddings, of varied lengths."""
    dims = INPUTS["layers+embeddings"]
    batch = make_batch([50, 41, 35, 50, 28, 44, 50, 33, 47], [5, 4, 3, 5, 3, 4, 5, 3, 5],
                       seed=11, dims=dims)  # fmt: skip
    assert set(batch["label"].tolist()) == set(range(N_CLASSES))
    _check_overfits(small_cfg(name=name), (batch, dims.kwargs(), N_CLASSES), lr=3e-3)

"""Each model memorises a tiny synthetic batch (100% training accuracy) within a few hundred steps.

The default run trains every model and variant; each stops as soon as the batch is fitted.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aver.config import ModelConfig
from aver.models import build_model

from .conftest import AUDIO_DIM, FACE, make_batch

N_CLASSES, MAX_STEPS, CHECK_EVERY = 4, 300, 10


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


def test_model_overfits_a_tiny_batch(case):
    _, cfg = case
    cfg = cfg.model_copy(update={"dropout": 0.0})
    torch.manual_seed(0)
    model = build_model(cfg, n_classes=N_CLASSES, audio_dim=AUDIO_DIM, face_size=FACE)
    batch = make_batch([40, 31, 36, 24, 40, 28, 33, 38], [4, 3, 4, 2, 4, 3, 2, 4], seed=7)
    batch["label"] = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    with torch.no_grad():
        start = (model.eval()(batch).logits.argmax(1) == batch["label"]).float().mean()
    assert start < 1.0  # not fitted before training
    steps = fit_steps(model, batch)
    assert steps is not None, f"did not reach 100% training accuracy in {MAX_STEPS} steps"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["avtca", "msan", "late_fusion"])
def test_default_size_model_overfits(name):
    """Default ModelConfig at the cache's default input size (64 log-mels x 200, 10 faces of 64)."""
    torch.manual_seed(0)
    cfg = ModelConfig(name=name, dropout=0.0)
    model = build_model(cfg, n_classes=N_CLASSES, audio_dim=64, face_size=64)
    g = torch.Generator().manual_seed(0)
    b = 8
    batch = {
        "audio": torch.randn(b, 200, 64, generator=g),
        "audio_mask": torch.arange(200)[None] < torch.tensor([200, 150] * 4)[:, None],
        "audio_times": ((torch.arange(200) + 0.5) / 100).expand(b, -1),
        "video": torch.randn(b, 10, 3, 64, 64, generator=g),
        "video_mask": torch.arange(10)[None] < torch.tensor([10, 8] * 4)[:, None],
        "video_times": ((torch.arange(10) + 0.5) / 5).expand(b, -1),
        "label": torch.tensor([0, 1, 2, 3, 3, 2, 1, 0]),
    }
    assert fit_steps(model, batch, lr=1e-3) is not None

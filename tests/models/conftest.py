"""Model-test helpers: a small config per model/variant and model batches of chosen lengths."""

from __future__ import annotations

import pytest
import torch

from aver.models import ModelConfig, model_config

AUDIO_DIM, FACE, N_CLASSES = 12, 16, 3
AUDIO_RATE, VIDEO_RATE = 100.0, 5.0

SMALL = {
    "d_model": 16,
    "heads": 4,
    "layers": 1,
    "audio_channels": 8,
    "video_channels": 8,
    "video_patches": 2,
    "video_stride": 1,
    "ctm_dim": 8,
    "dropout": 0.1,
    "unimodal_weight": 0.0,  # the "-unimodal" cases turn the branch classifiers on
}

# (test id, overrides): every model and every variant/ablation.
CASES: list[tuple[str, dict]] = [
    *[
        (f"avtca-{v}", {"name": "avtca", "variant": v})
        for v in ("it1", "it4", "ct1", "ct4", "full")
    ],
    *[
        (f"msan-{p}-ctm{w}", {"name": "msan", "position": p, "ctm_weight": w})
        for p in ("none", "index_rope", "tarope")
        for w in (0.0, 0.5)
    ],
    ("audio_only", {"name": "audio_only"}),
    ("video_only", {"name": "video_only"}),
    ("late_fusion", {"name": "late_fusion"}),
    *[
        (f"{m}-unimodal", {"name": m, "unimodal_weight": 0.5})
        for m in ("avtca", "msan", "late_fusion")
    ],
]


def small_cfg(**overrides) -> ModelConfig:
    """A CPU-tiny ModelConfig with `overrides` applied."""
    return model_config(**{**SMALL, **overrides})


def make_batch(
    audio_lengths: list[int],
    video_lengths: list[int],
    *,
    seed: int = 0,
    pad_value: float | None = None,
) -> dict[str, torch.Tensor]:
    """Random clips of the given lengths, padded to the longest (padding = `pad_value` or noise).

    Times follow the loader: centres of 10 ms audio hops and 200 ms video frames, continued
    into the padding.
    """
    g = torch.Generator().manual_seed(seed)
    b, ta, tv = len(audio_lengths), max(audio_lengths), max(video_lengths)
    audio = torch.randn(b, ta, AUDIO_DIM, generator=g)
    video = torch.randn(b, tv, 3, FACE, FACE, generator=g)
    a_mask = torch.arange(ta)[None, :] < torch.tensor(audio_lengths)[:, None]
    v_mask = torch.arange(tv)[None, :] < torch.tensor(video_lengths)[:, None]
    if pad_value is not None:
        audio[~a_mask] = pad_value
        video[~v_mask] = pad_value
    return {
        "audio": audio,
        "audio_mask": a_mask,
        "audio_times": ((torch.arange(ta) + 0.5) / AUDIO_RATE).expand(b, -1).clone(),
        "video": video,
        "video_mask": v_mask,
        "video_times": ((torch.arange(tv) + 0.5) / VIDEO_RATE).expand(b, -1).clone(),
        "label": torch.arange(b) % N_CLASSES,
    }


def clip_of(batch: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """Clip i of a batch alone, cropped to its real length (a batch of one, no padding)."""
    ta = int(batch["audio_mask"][i].sum())
    tv = int(batch["video_mask"][i].sum())
    out = {}
    for key, value in batch.items():
        if key == "label":
            out[key] = value[i : i + 1]
        else:
            n = ta if key.startswith("audio") else tv
            out[key] = value[i : i + 1, :n]
    return out


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def case(request) -> tuple[str, ModelConfig]:
    """(id, small config) for each model and variant."""
    name, overrides = request.param
    return name, small_cfg(**overrides)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one intra-op thread (no OpenMP spin on shared cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Model-test helpers: a small config per model/variant, the input kinds (features or encoder
layers, face crops or embeddings) and model batches of chosen lengths."""

from __future__ import annotations

import pytest
import torch

from aver.models import MODEL_CONFIGS, InputDims, ModelConfig, model_config

AUDIO_DIM, FACE, N_CLASSES = 12, 16, 3
AUDIO_RATE, VIDEO_RATE = 100.0, 5.0
LAYERS, LAYER_DIM, EMBED_DIM = 3, 10, 6  # encoder layers x dims; face embedding dims
EMBED_RATE = 50.0  # speech-encoder frames per second

CROPS = InputDims(audio_dim=AUDIO_DIM, face_size=FACE)  # log-mel frames + face crops (today)
# input kind -> dims: every combination of audio (features | layers) and video (crops | embeddings)
INPUTS: dict[str, InputDims] = {
    "features+crops": CROPS,
    "layers+embeddings": InputDims(audio_dim=LAYER_DIM, audio_layers=LAYERS, video_dim=EMBED_DIM),
    "layers+crops": InputDims(audio_dim=LAYER_DIM, audio_layers=LAYERS, face_size=FACE),
    "features+embeddings": InputDims(audio_dim=AUDIO_DIM, video_dim=EMBED_DIM),
}

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
    dims: InputDims = CROPS,
) -> dict[str, torch.Tensor]:
    """Random clips of the given lengths, padded to the longest (padding = `pad_value` or noise).

    Arrays follow `dims`: audio (B, Ta, F) or (B, Ta, L, D), video (B, Tv, 3, S, S) or
    (B, Tv, E). Times follow the loader: centres of 10 ms audio hops (20 ms encoder frames) and
    200 ms video frames, continued into the padding.
    """
    g = torch.Generator().manual_seed(seed)
    b, ta, tv = len(audio_lengths), max(audio_lengths), max(video_lengths)
    a_frame = (dims.audio_layers, dims.audio_dim) if dims.audio_embeddings else (dims.audio_dim,)
    v_frame = (dims.video_dim,) if dims.video_embeddings else (3, dims.face_size, dims.face_size)
    audio = torch.randn(b, ta, *a_frame, generator=g)
    video = torch.randn(b, tv, *v_frame, generator=g)
    audio_rate = EMBED_RATE if dims.audio_embeddings else AUDIO_RATE
    a_mask = torch.arange(ta)[None, :] < torch.tensor(audio_lengths)[:, None]
    v_mask = torch.arange(tv)[None, :] < torch.tensor(video_lengths)[:, None]
    if pad_value is not None:
        audio[~a_mask] = pad_value
        video[~v_mask] = pad_value
    return {
        "audio": audio,
        "audio_mask": a_mask,
        "audio_times": ((torch.arange(ta) + 0.5) / audio_rate).expand(b, -1).clone(),
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


@pytest.fixture(
    params=[(m, k) for m in MODEL_CONFIGS for k in INPUTS], ids=lambda p: f"{p[0]}-{p[1]}"
)
def model_inputs(request) -> tuple[ModelConfig, InputDims]:
    """(small config, input dims) for every registered model x input kind."""
    name, kind = request.param
    return small_cfg(name=name), INPUTS[kind]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one intra-op thread (no OpenMP spin on shared cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

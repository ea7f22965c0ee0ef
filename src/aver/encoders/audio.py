"""A frozen torchaudio speech model that turns 16 kHz waveforms into per-layer hidden states.

The architecture is built exactly as the torchaudio bundle builds it (`_model_type`,
`_params`), with random init, then the weights file is loaded strictly. The large models
layer-normalise the waveform first (as the bundle does); here that is done per clip over its
real samples, so padding in a batch does not change it. The base models' first conv layer
group-normalises over time; it is replaced by a version that counts only each clip's real
frames, so a clip's frames are the same padded in a batch or alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aver.encoders.specs import AudioEncoderSpec
from aver.io.state_dict import load_into


def build_model(spec: AudioEncoderSpec) -> nn.Module:
    """The bundle's architecture with random weights (no download)."""
    import torchaudio.pipelines
    from torchaudio.pipelines._wav2vec2.utils import _get_model

    bundle = getattr(torchaudio.pipelines, spec.bundle)
    model: nn.Module = _get_model(bundle._model_type, bundle._params)
    return model


class _MaskedGroupNormConv(nn.Module):
    """A ConvLayerBlock whose GroupNorm (one group per channel, over time) sees only the real
    frames of each clip. Holds the original block, so its weights are the loaded ones."""

    def __init__(self, block: Any):
        super().__init__()
        self.block = block

    def forward(
        self, x: torch.Tensor, length: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b: Any = self.block
        if length is None:
            return b(x, length)
        x = b.conv(x)
        out_len = torch.div(length - b.kernel_size, b.stride, rounding_mode="floor") + 1
        out_len = out_len.clamp_min(0)
        mask = torch.arange(x.shape[-1], device=x.device)[None, :] < out_len[:, None]
        m = mask[:, None, :].to(x.dtype)
        n = m.sum(-1, keepdim=True).clamp_min(1)
        mean = (x * m).sum(-1, keepdim=True) / n
        var = (((x - mean) * m) ** 2).sum(-1, keepdim=True) / n
        norm = b.layer_norm
        x = (x - mean) / torch.sqrt(var + norm.eps)
        x = x * norm.weight[None, :, None] + norm.bias[None, :, None]
        return nn.functional.gelu(x), out_len


class AudioEncoder:
    """Frozen speech model: `encode(waves, lengths)` -> (B, T, L, D) float16 hidden states."""

    def __init__(
        self,
        spec: AudioEncoderSpec,
        weights: str | Path,
        layers: Sequence[int],
        device: str = "cpu",
    ):
        self.spec = spec
        self.layers = list(layers)
        self.device = torch.device(device)
        fix = (
            f"point cache.encoder_weights (or the file in torch's cache) at the {spec.name} "
            f"weights ({spec.filename}, torchaudio.pipelines.{spec.bundle}), or choose the "
            "cache.audio_encoder those weights belong to"
        )
        model: Any = load_into(build_model(spec), weights, what=spec.name, fix=fix)
        first = model.feature_extractor.conv_layers[0]
        if isinstance(first.layer_norm, nn.GroupNorm):
            model.feature_extractor.conv_layers[0] = _MaskedGroupNormConv(first)
        self.model = model.eval().requires_grad_(False).to(self.device)

    @property
    def shape_per_frame(self) -> tuple[int, int]:
        """(layers kept, hidden size)."""
        return len(self.layers), self.spec.dim

    def encode(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(B, N) float32 16 kHz waves, (B,) real samples each -> (B, T, L, D) float16.

        T = spec.n_frames(N); frames past a clip's own n_frames(length) are padding. L follows
        `layers` (1-based transformer layers).
        """
        waves = np.asarray(waves, dtype=np.float32)
        n = waves.shape[1]
        t = self.spec.n_frames(n)
        if t == 0:
            return np.zeros((len(waves), 0, *self.shape_per_frame), np.float16)
        x = torch.from_numpy(waves).to(self.device)
        lens = torch.as_tensor(np.asarray(lengths), dtype=torch.long, device=self.device)
        with torch.inference_mode():
            if self.spec.normalize_waveform:
                x = _normalize(x, lens)
            hidden, frames = _hidden_states(self.model, x, lens, max(self.layers))
            kept = torch.stack([hidden[k - 1] for k in self.layers], dim=2)[:, :t]  # (B,T,L,D)
            real = torch.arange(t, device=self.device)[None, :] < frames[:, None]
            kept = kept.masked_fill(~real[:, :, None, None], 0.0)  # padding frames: 0
        return kept.to(torch.float16).cpu().numpy()


def _hidden_states(
    model: Any, x: torch.Tensor, lengths: torch.Tensor, num_layers: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each transformer layer's output for the first `num_layers` layers, and each clip's real
    frame count. As `Wav2Vec2Model.extract_features` with lengths, but WavLM's attention takes
    the padding as `key_padding_mask` (torchaudio passes WavLM an attention mask it refuses)."""
    feats, frames = model.feature_extractor(x, lengths)
    encoder = model.encoder
    h = encoder.feature_projection(feats)
    pad = torch.arange(h.shape[1], device=h.device)[None, :] >= frames[:, None]
    h = encoder.transformer._preprocess(h.masked_fill(pad[:, :, None], 0.0))
    layers = encoder.transformer.layers[:num_layers]
    if type(layers[0].attention).__name__ == "WavLMSelfAttention":
        attn_mask = None
        key_pad = torch.zeros(pad.shape, dtype=h.dtype, device=h.device).masked_fill(
            pad, float("-inf")
        )
    else:
        attn_mask = (-10000.0 * pad[:, None, None, :].to(h.dtype)).expand(
            h.shape[0], 1, h.shape[1], h.shape[1]
        )
        key_pad = None
    out, bias = [], None
    for layer in layers:
        h, bias = layer(h, attn_mask, position_bias=bias, key_padding_mask=key_pad)
        out.append(h)
    return out, frames


def _normalize(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each clip layer-normalised over its real samples (as the bundle does one clip); padding
    stays 0."""
    mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
    n = mask.sum(1, keepdim=True).clamp_min(1)
    mean = (x * mask).sum(1, keepdim=True) / n
    var = (((x - mean) * mask) ** 2).sum(1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * mask

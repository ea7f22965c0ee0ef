"""Build the encoders a CacheConfig names, record what they are, and compare two records.

`load_encoders` resolves the weights of every configured pretrained encoder before building
any, so a missing file fails before a model is built or a clip touched. `Encoders.identity()`
is what the cache metadata, the MLflow run and the model file record; `check_same_encoders`
refuses a model whose encoders differ from the ones at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aver.encoders.audio import AudioEncoder
from aver.encoders.face import FaceEncoder
from aver.encoders.specs import AUDIO_ENCODERS, FACE_ENCODERS
from aver.encoders.weights import resolve_encoder_weights
from aver.errors import DataError
from aver.io.weights import ResolvedWeights

COMPARED = ("name", "weights_sha256", "layers")  # what must match between cache and model


def pick_device(device: str = "auto") -> str:
    """ "auto": cuda when available, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass
class Encoders:
    """The configured encoders (None: logmel/mfcc or crops) and their weights files."""

    audio: AudioEncoder | None
    face: FaceEncoder | None
    audio_input: str = "logmel"  # cache.audio_encoder
    face_input: str = "crops"  # cache.face_encoder
    audio_weights: ResolvedWeights | None = None
    face_weights: ResolvedWeights | None = None

    def audio_shape(self, n_samples: int) -> tuple[int, int, int]:
        """(T, L, D) of `encode` for a clip of `n_samples`."""
        if self.audio is None:
            raise ValueError(f"audio_encoder {self.audio_input} is not a pretrained encoder")
        return (self.audio.spec.n_frames(n_samples), *self.audio.shape_per_frame)

    @property
    def face_dim(self) -> int:
        if self.face is None:
            raise ValueError(f"face_encoder {self.face_input} is not a pretrained encoder")
        return self.face.dim

    def identity(self) -> dict[str, dict[str, Any]]:
        """What the cache was built with: per modality, the encoder, its weights and geometry."""
        return {"audio": self._audio_identity(), "face": self._face_identity()}

    def _audio_identity(self) -> dict[str, Any]:
        if self.audio is None or self.audio_weights is None:
            return {"name": self.audio_input}
        spec = self.audio.spec
        return {
            "name": spec.name,
            "weights": self.audio_weights.path.name,
            "weights_sha256": self.audio_weights.sha256,
            "layers": list(self.audio.layers),
            "n_layers": spec.n_layers,
            "dim": spec.dim,
            "hop_s": spec.hop_s,
            "receptive_field_s": spec.receptive_field_s,
            "sample_rate": spec.sample_rate,
        }

    def _face_identity(self) -> dict[str, Any]:
        if self.face is None or self.face_weights is None:
            return {"name": self.face_input}
        return {
            "name": self.face.spec.name,
            "weights": self.face_weights.path.name,
            "weights_sha256": self.face_weights.sha256,
            "dim": self.face.dim,
            "input_size": self.face.spec.input_size,
        }


def load_encoders(
    cfg: Any, device: str = "auto", transfer: dict[str, Any] | None = None
) -> Encoders:
    """The encoders of `cfg` (a CacheConfig), frozen on `device` ("auto": cuda if present).

    Every pretrained encoder's weights are resolved (found, verified or downloaded) first;
    `transfer` goes to the download (`DownloadConfig.transfer_kwargs()`).
    """
    audio_w = (
        resolve_encoder_weights(cfg.audio_encoder, cfg, transfer) if cfg.pretrained_audio else None
    )
    face_w = (
        resolve_encoder_weights(cfg.face_encoder, cfg, transfer) if cfg.pretrained_face else None
    )
    dev = pick_device(cfg.encoder_device if device == "auto" else device)
    audio = face = None
    if audio_w is not None:
        spec = AUDIO_ENCODERS[cfg.audio_encoder]
        audio = AudioEncoder(spec, audio_w.path, cfg.kept_layers, device=dev)
    if face_w is not None:
        face = FaceEncoder(FACE_ENCODERS[cfg.face_encoder], face_w.path, device=dev)
    return Encoders(audio, face, cfg.audio_encoder, cfg.face_encoder, audio_w, face_w)


def check_same_encoders(
    expected: Mapping[str, Any], actual: Mapping[str, Any], *, source: str
) -> None:
    """DataError when `actual` (identity() of the encoders at hand) differs from `expected`
    (recorded in `source`, e.g. the model file) in encoder name, weights sha256 or layers."""
    problems = []
    for modality in ("audio", "face"):
        want = dict(expected.get(modality) or {})
        got = dict(actual.get(modality) or {})
        for key in COMPARED:
            if want.get(key) != got.get(key):
                problems.append(
                    f"{modality} encoder {want.get('name') or '?'} {key}: {source} has "
                    f"{want.get(key)!r}, here {got.get(key)!r}"
                )
    if problems:
        raise DataError(
            "encoders differ from the ones the model was trained with: " + "; ".join(problems),
            path=source,
            fix="set cache.audio_encoder / face_encoder / audio_layers as the model was trained, "
            "and point cache.encoder_weights / encoder_sha256 at the weights it was trained with; "
            "or retrain the model with these encoders",
        )

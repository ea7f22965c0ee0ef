"""The encoder registry: name -> architecture, geometry and the library's weights file and URL.

Audio encoders are torchaudio's self-supervised speech bundles (`torchaudio.pipelines`), used
frozen. All of them share the wav2vec 2.0 convolutional front-end: 7 conv layers with kernels
(10, 3, 3, 3, 3, 2, 2) and strides (5, 2, 2, 2, 2, 2, 2), so at 16 kHz a frame covers a
receptive field of 400 samples (25 ms) and frames are 320 samples (20 ms) apart. Frame i covers
samples [i * 320, i * 320 + 400) of its input; its timestamp is the centre of that span.

Face encoders embed each aligned face frame into one vector: facenet-pytorch's
InceptionResnetV1 (VGGFace2 or CASIA-WebFace) and torchvision ResNets (ImageNet), or any
TorchScript model given by path (`torchscript`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AUDIO_FEATURES = ("logmel", "mfcc")  # computed features (trained from scratch), not encoders
FACE_CROPS = "crops"  # face pixels (trained from scratch), not an encoder
TORCHAUDIO_URL = "https://download.pytorch.org/torchaudio/models/"
FACENET_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
TORCHVISION_URL = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class AudioEncoderSpec:
    """A torchaudio speech bundle: `bundle` in torchaudio.pipelines, its file and geometry."""

    name: str
    bundle: str  # attribute of torchaudio.pipelines, e.g. "WAVLM_BASE_PLUS"
    filename: str  # torchaudio's weights file name (its cache and download name)
    n_layers: int  # transformer layers (hidden states kept: 1..n_layers)
    dim: int  # hidden size
    normalize_waveform: bool  # the bundle layer-normalises the waveform first (large models)
    sample_rate: int = 16000
    hop_samples: int = 320
    receptive_field_samples: int = 400

    @property
    def url(self) -> str:
        return TORCHAUDIO_URL + self.filename

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sample_rate

    @property
    def receptive_field_s(self) -> float:
        return self.receptive_field_samples / self.sample_rate

    def n_frames(self, n_samples: int) -> int:
        """Frames the encoder yields from `n_samples` input samples."""
        if n_samples < self.receptive_field_samples:
            return 0
        return 1 + (n_samples - self.receptive_field_samples) // self.hop_samples

    def frame_times(self, n_frames: int, start_s: float = 0.0) -> np.ndarray:
        """Centre of each frame's receptive field in seconds, offset by `start_s`."""
        idx = np.arange(n_frames, dtype=np.float64)
        centre = idx * self.hop_samples + self.receptive_field_samples / 2
        return (start_s + centre / self.sample_rate).astype(np.float32)


@dataclass(frozen=True)
class FaceEncoderSpec:
    """A per-frame face network: its builder, input size and normalisation, file and URL."""

    name: str
    builder: str  # "module:function" in aver.encoders.face
    filename: str | None  # the library's weights file name (None: given by path only)
    base_url: str | None
    dim: int | None  # embedding size (None: read from the model, torchscript)
    input_size: int  # side in pixels the network takes
    mean: tuple[float, float, float]  # per RGB channel, on pixels scaled to [0, 1]
    std: tuple[float, float, float]

    @property
    def url(self) -> str | None:
        return (
            None
            if self.filename is None or self.base_url is None
            else self.base_url + self.filename
        )


_A = AudioEncoderSpec
_AUDIO = [
    _A("wav2vec2_base", "WAV2VEC2_BASE", "wav2vec2_fairseq_base_ls960.pth", 12, 768, False),
    _A("wav2vec2_large_lv60k", "WAV2VEC2_LARGE_LV60K", "wav2vec2_fairseq_large_lv60k.pth", 24,
       1024, True),
    _A("hubert_base", "HUBERT_BASE", "hubert_fairseq_base_ls960.pth", 12, 768, False),
    _A("hubert_large", "HUBERT_LARGE", "hubert_fairseq_large_ll60k.pth", 24, 1024, True),
    _A("wavlm_base", "WAVLM_BASE", "wavlm_base.pth", 12, 768, False),
    _A("wavlm_base_plus", "WAVLM_BASE_PLUS", "wavlm_base_plus.pth", 12, 768, False),
    _A("wavlm_large", "WAVLM_LARGE", "wavlm_large.pth", 24, 1024, True),
]  # fmt: skip
AUDIO_ENCODERS: dict[str, AudioEncoderSpec] = {s.name: s for s in _AUDIO}

_FACENET = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # facenet's (x - 127.5) / 128, near enough / 127.5
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_FACE = [
    FaceEncoderSpec(
        "facenet_vggface2", "aver.encoders.face:facenet_vggface2",
        "20180402-114759-vggface2.pt", FACENET_URL, 512, 160, *_FACENET,
    ),
    FaceEncoderSpec(
        "facenet_casia", "aver.encoders.face:facenet_casia",
        "20180408-102900-casia-webface.pt", FACENET_URL, 512, 160, *_FACENET,
    ),
    FaceEncoderSpec(
        "resnet18", "aver.encoders.face:resnet18", "resnet18-f37072fd.pth", TORCHVISION_URL, 512,
        224, *_IMAGENET,
    ),
    FaceEncoderSpec(
        "resnet50", "aver.encoders.face:resnet50", "resnet50-0676ba61.pth", TORCHVISION_URL, 2048,
        224, *_IMAGENET,
    ),
    FaceEncoderSpec(
        "torchscript", "aver.encoders.face:torchscript", None, None, None, 112, *_FACENET
    ),
]  # fmt: skip
FACE_ENCODERS: dict[str, FaceEncoderSpec] = {s.name: s for s in _FACE}

"""Model files with random weights (a real card, real stats layout) and demo videos, for
`aver predict` tests and bench/predict.py: no training needed to run the predict code."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ["neutral", "happy", "sad", "angry"]
SMALL_MSAN = {
    "d_model": 16, "heads": 2, "layers": 1, "audio_channels": 8, "video_channels": 4,
    "ctm_dim": 8, "ctm_delta_s": 0.25,
}  # fmt: skip


def write_model_file(
    path: str | Path,
    *,
    name: str = "msan",
    modality_dropout: float = 0.0,
    align: dict[str, Any] | None = None,
    cache: dict[str, Any] | None = None,
    seed: int = 0,
    small: bool = True,
) -> Path:
    """model.pt of a randomly initialised `name` model whose card holds these settings
    (small: a 1-layer msan, log-mel 32 bins, 32 px faces at 5 fps in a 2 s window unless
    `cache` says otherwise; not small: params.yaml's defaults, the size the pipeline trains)."""
    import torch

    from aver.config import parse_params
    from aver.features.stats import FoldStats
    from aver.model_card import card_from_params
    from aver.models import build_model
    from aver.training import checkpoints

    sizes = {"n_mels": 32, "face_size": 32, "video_fps": 5.0, "window_s": 2.0} if small else {}
    cache = {**sizes, **(cache or {})}
    model = {"name": name, **(SMALL_MSAN if name == "msan" and small else {})}
    params = parse_params(
        {
            "align": {"device": "cpu", **(align or {})},
            "cache": cache,
            "train": {"model": model, "modality_dropout": modality_dropout},
        },
        "test model",
    )
    n = params.cache.n_mels
    dims = {"audio_dim": n, "face_size": params.cache.face_size}
    torch.manual_seed(seed)
    net = build_model(params.train.model, n_classes=len(CLASSES), **dims)
    stats = FoldStats(
        np.full(n, -5.0, np.float32), np.full(n, 2.0, np.float32),
        np.array([0.5, 0.45, 0.4], np.float32), np.array([0.25, 0.22, 0.2], np.float32), 8,
    )  # fmt: skip
    card = card_from_params(params, classes=CLASSES, dims=dims, stats=stats.to_dict())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.save_model_file(path, net.state_dict(), card)
    return path


def demo_clips(root: str | Path, duration_s: float = 3.0, size: int = 160) -> dict[str, Path]:
    """One generated talking-face clip (H.264 + AAC) of one demo speaker per emotion."""
    from aver.config import DemoConfig
    from aver.datasets.demo import plan_clips, render_media, speaker_appearance, write_mp4

    cfg = DemoConfig(speakers=2, clips_per_class=1, duration_s=duration_s, size=size)
    look = speaker_appearance(cfg.seed, 0, cfg.size)
    out = {}
    for clip in plan_clips(cfg):
        if clip.speaker == 0:
            path = Path(root) / f"{clip.emotion}.mp4"
            if not path.is_file():
                frames, audio = render_media(clip, look, cfg)
                write_mp4(str(path), frames, audio, cfg.fps, cfg.sample_rate)
            out[clip.emotion] = path
    return out


def concat(videos: list[Path], out: Path, *, audio: bool = True, loop: int = 1) -> Path:
    """The videos one after the other (`loop` times over), re-encoded: H.264 (+ AAC)."""
    from aver.media.ffmpeg import ffmpeg_exe

    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{v.resolve()}'\n" for v in videos * loop))
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", "aac"] if audio else ["-an"]
    subprocess.run([*cmd, str(out)], check=True)
    return out


def pattern_clip(path: Path, duration_s: float, size: int = 160, *, audio: bool = True) -> Path:
    """A test pattern without a face (+ a 440 Hz tone), 25 fps, mono 16 kHz AAC: it
    concatenates with `demo_clips`."""
    from aver.media.ffmpeg import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi"]
    cmd += ["-i", f"testsrc=s={size}x{size}:d={duration_s}:r=25"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=f=440:d={duration_s}:r=16000", "-ac", "1"]
        cmd += ["-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    return path


def strip_audio(video: Path, out: Path) -> Path:
    """`video` without its sound track (the video stream copied)."""
    from aver.media.ffmpeg import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(video), "-c:v", "copy", "-an", str(out)]
    subprocess.run(cmd, check=True)
    return out

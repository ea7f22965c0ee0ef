"""Synthetic stage inputs for the cache: raw index, 16 kHz WAVs, aligned-face shards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from aver.config import AlignConfig, CacheConfig, DataConfig, ExtractConfig, Params
from aver.features.pipeline import run
from aver.io.shards import ShardWriter

SR = 16000
FACE_FPS = 25.0
FACE_SIDE = 32
CLASSES = ("angry", "happy")


@dataclass
class Clip:
    clip_id: str
    speaker: str
    label: str
    wave: np.ndarray  # float32 mono at SR
    frames: np.ndarray  # (T, S, S, 3) uint8
    times: np.ndarray  # (T,) float32


def face_times(duration: float, fps: float = FACE_FPS) -> np.ndarray:
    return ((np.arange(int(duration * fps)) + 0.5) / fps).astype(np.float32)


def random_clip(
    clip_id: str, speaker: str, label: str, duration: float, seed: int, scale: float = 1.0
) -> Clip:
    """Noise audio and noisy constant-colour faces; `scale` multiplies audio and brightness."""
    rng = np.random.default_rng(seed)
    wave = (rng.normal(0, 0.05 * scale, int(duration * SR))).astype(np.float32)
    times = face_times(duration)
    base = rng.integers(40, 200, size=3)
    frames = base + rng.integers(-20, 21, size=(len(times), FACE_SIDE, FACE_SIDE, 3))
    frames = np.clip(frames * scale, 0, 255).astype(np.uint8)
    return Clip(clip_id, speaker, label, np.clip(wave, -1, 1), frames, times)


def standard_clips(speakers: int = 6, per_class: int = 2, extreme: str | None = None) -> list[Clip]:
    """speakers x classes x per_class clips of 0.8-1.6 s; `extreme` speaker gets huge values."""
    clips = []
    for s in range(speakers):
        spk = f"sp{s + 1:02d}"
        for c, label in enumerate(CLASSES):
            for k in range(per_class):
                cid = f"{spk}-{label}-{k}"
                seed = s * 100 + c * 10 + k
                duration = 0.8 + 0.2 * ((s + c + k) % 5)
                scale = 15.0 if spk == extreme else 1.0
                clips.append(random_clip(cid, spk, label, duration, seed, scale))
    return clips


def whole_clips() -> list[Clip]:
    """6 speakers x 2 classes, clips of 0.6 s to 3.1 s (1 to 6 windows of 1 s every 0.5 s)."""
    durations = (0.6, 1.0, 1.3, 2.2, 3.1)
    clips = []
    for s in range(6):
        for c, label in enumerate(CLASSES):
            d = durations[(s + c) % len(durations)]
            clips.append(random_clip(f"sp{s}-{label}", f"sp{s}", label, d, seed=10 * s + c))
    return clips


def write_inputs(root: Path, clips: list[Clip], *, n_folds: int = 3, order_seed: int | None = None):
    """Write raw/index.csv + dataset.json, interim WAVs + manifest, faces shards + index.csv.

    `order_seed` shuffles every table's rows and the order clips enter the face shards.
    """
    order = list(range(len(clips)))
    if order_seed is not None:
        np.random.default_rng(order_seed).shuffle(order)
    clips = [clips[i] for i in order]
    raw, interim, faces = root / "raw", root / "interim", root / "faces"
    for d in (raw, interim / "audio", faces):
        d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "clip_id": [c.clip_id for c in clips],
            "path": [f"media/{c.clip_id}.mp4" for c in clips],
            "label": [c.label for c in clips],
            "speaker": [c.speaker for c in clips],
            "intensity": ["normal"] * len(clips),
        }
    ).to_csv(raw / "index.csv", index=False)
    (raw / "dataset.json").write_text(
        json.dumps(
            {
                "name": "synthetic",
                "classes": list(CLASSES),
                "n_folds": n_folds,
                "n_clips": len(clips),
            }
        )
    )
    rows = []
    for c in clips:
        sf.write(interim / "audio" / f"{c.clip_id}.wav", c.wave, SR, subtype="PCM_16")
        rows.append(
            {
                "clip_id": c.clip_id,
                "audio": f"audio/{c.clip_id}.wav",
                "video": f"video/{c.clip_id}.mp4",  # faces come from the shards below
                "duration_s": len(c.wave) / SR,
            }
        )
    pd.DataFrame(rows).to_csv(interim / "manifest.csv", index=False)
    writer = ShardWriter(faces, max_bytes=200_000)
    for c in clips:
        n = len(c.times)
        writer.add(
            c.clip_id,
            frames=c.frames,
            times=c.times,
            detected=np.ones(n, bool),
            landmarks=np.zeros((n, 5, 2), np.float32),
        )
    shards = writer.close()
    pd.DataFrame(
        {
            "clip_id": shards["key"],
            "shard": shards["shard"],
            "offset": shards["offset"],
            "n_frames": shards["length"],
            "detection_rate": 1.0,
            "fps": FACE_FPS,
        }
    ).to_csv(faces / "index.csv", index=False)


def make_params(root: Path, **cache: object) -> Params:
    defaults: dict[str, object] = {
        "window_s": 1.0,
        "video_fps": 10.0,
        "face_size": 16,
        "n_mels": 32,
        "shard_clips": 5,
    }
    # one window per clip (the window centred on it) unless a test caches whole clips
    defaults["max_clip_s"] = cache.get("window_s", defaults["window_s"])
    return Params(
        data=DataConfig(root=str(root / "raw")),
        extract=ExtractConfig(out=str(root / "interim"), sample_rate=SR),
        align=AlignConfig(out=str(root / "faces")),
        cache=CacheConfig(out=str(root / "features"), **(defaults | cache)),
    )


def build_cache(root: Path, clips: list[Clip], order_seed: int | None = None, **cache) -> Path:
    write_inputs(root, clips, order_seed=order_seed)
    return run(make_params(root, **cache))


@pytest.fixture(scope="package")
def standard_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-clip cache (6 speakers, 3 folds, 5 clips per shard), built once per package."""
    return build_cache(tmp_path_factory.mktemp("std"), standard_clips())

"""Pretrained encoder cost: encoding seconds per second of media, cache bytes per clip, and both
projected for RAVDESS (1,440 clips) and CREMA-D (7,442).

    python bench/encoders.py [--audio NAME ...] [--face NAME ...] [--window 3.0] [--device auto]

Each encoder is built with random weights saved to a temp file and loaded through the same code
the cache stage uses (aver.encoders: speed does not depend on the weights' values). Audio: a
batch of `--batch` clips of `--window` s (16 kHz noise) per forward, as the cache stage batches
`cache.encoder_batch` clips; faces: `--frames` aligned 112 px faces per call. One warm-up call,
then calls for at least `--min-s` seconds. Cache bytes per clip are the cached arrays of one
`--window` s window (all layers, float16; `cache.video_fps` face vectors). The projections
multiply by the corpus's clip count (the cache encodes one window per clip). Prints markdown.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from aver.config import CacheConfig
from aver.encoders import AUDIO_ENCODERS, FACE_ENCODERS
from aver.encoders.audio import AudioEncoder
from aver.encoders.audio import build_model as build_audio
from aver.encoders.face import FaceEncoder
from aver.encoders.face import build_model as build_face
from aver.encoders.loading import pick_device
from aver.features.window import WindowSpec

CORPORA = {"RAVDESS": 1440, "CREMA-D": 7442}
SR, FACE_SIDE = 16000, 112


def timed(fn: Callable[[], object], min_s: float) -> float:
    """Seconds per call: one warm-up call, then calls for at least `min_s` seconds."""
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if time.perf_counter() - t0 >= min_s:
            return (time.perf_counter() - t0) / n


def clip_bytes(audio: str, face: str, window_s: float) -> int:
    """Bytes of one clip's cached arrays (audio, video, masks, times)."""
    cfg = CacheConfig(audio_encoder=audio, face_encoder=face, window_s=window_s)
    shapes = WindowSpec.from_config(cfg, SR).shapes()
    return sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in shapes.values())


def audio_cost(name: str, args: argparse.Namespace, tmp: Path, device: str) -> dict[str, float]:
    spec = AUDIO_ENCODERS[name]
    path = tmp / spec.filename
    torch.save(build_audio(spec).state_dict(), path)
    enc = AudioEncoder(spec, path, range(1, spec.n_layers + 1), device=device)
    path.unlink()
    n = round(args.window * SR)
    waves = np.random.default_rng(0).normal(0, 0.1, (args.batch, n)).astype(np.float32)
    lengths = np.full(args.batch, n)
    per_call = timed(lambda: enc.encode(waves, lengths), args.min_s)
    return {"s_per_s": per_call / (args.batch * args.window)}


def face_cost(name: str, args: argparse.Namespace, tmp: Path, device: str) -> dict[str, float]:
    spec = FACE_ENCODERS[name]
    assert spec.filename is not None
    path = tmp / spec.filename
    torch.save(build_face(spec).state_dict(), path)
    enc = FaceEncoder(spec, path, device=device)
    path.unlink()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.frames, FACE_SIDE, FACE_SIDE, 3), dtype=np.uint8)
    per_frame = timed(lambda: enc.encode(frames), args.min_s) / args.frames
    fps = CacheConfig().video_fps
    return {"s_per_frame": per_frame, "s_per_s": per_frame * fps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", nargs="*", default=list(AUDIO_ENCODERS))
    ap.add_argument("--face", nargs="*", default=[n for n in FACE_ENCODERS if n != "torchscript"])
    ap.add_argument("--window", type=float, default=3.0, help="seconds cached per clip")
    ap.add_argument("--batch", type=int, default=16, help="audio clips per forward")
    ap.add_argument("--frames", type=int, default=64, help="faces per face-encoder call")
    ap.add_argument("--min-s", type=float, default=5.0, help="timing seconds per encoder")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    where = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="aver-bench-enc-") as tmp:
        for name in args.audio:
            cost = audio_cost(name, args, Path(tmp), device)
            rows.append(("audio", name, cost["s_per_s"], clip_bytes(name, "crops", args.window)))
            print(f"{name}: {cost['s_per_s']:.4f} s per s of audio", file=sys.stderr)
        for name in args.face:
            cost = face_cost(name, args, Path(tmp), device)
            rows.append(("face", name, cost["s_per_s"], clip_bytes("logmel", name, args.window)))
            print(f"{name}: {cost['s_per_frame'] * 1000:.1f} ms per face", file=sys.stderr)
    base = clip_bytes("logmel", "crops", args.window)
    print(f"\n`{' '.join(['python', *sys.argv])}` ({where}; {args.window:g} s window per clip)\n")
    head = " | ".join(f"{c} ({k:,} clips): encode min / cache GB" for c, k in CORPORA.items())
    print(f"| encoder | s per s of media | cache bytes per clip | {head} |")
    print("|---|---|---|" + "---|" * len(CORPORA))
    print(f"| logmel + crops (from scratch, no encoder) | - | {base:,} | " + " | ".join(
        f"- / {k * base / 1e9:.2f}" for k in CORPORA.values()) + " |")  # fmt: skip
    for kind, name, s_per_s, nbytes in rows:
        cells = " | ".join(
            f"{k * args.window * s_per_s / 60:.1f} / {k * nbytes / 1e9:.2f}"
            for k in CORPORA.values()
        )
        print(f"| {kind}: {name} | {s_per_s:.4f} | {nbytes:,} | {cells} |")
    print(
        "\nCache bytes: the audio encoder's row holds all its layers with face crops beside them; "
        "a face encoder's row holds log-mel beside its vectors. Both pretrained: add the two rows "
        "and subtract the from-scratch row."
    )


if __name__ == "__main__":
    main()

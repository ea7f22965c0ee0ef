"""Loader benchmark: feature cache vs decoding media on the fly, and memory at 10k clips.

    python bench/loader.py [--clips 48] [--synthetic 10000] [--workdir DIR] [--keep]

1. Throughput. `--clips` synthetic clips (H.264 mp4 at 320x240/25 fps via PyAV + 16 kHz WAV) are
   cached through the real cache stage (aver.features.pipeline.run; the aligned faces are the
   centre square of each decoded frame, so no detector runs), then read with make_loader. The
   on-the-fly path decodes the mp4 with PyAV, reads the WAV, computes the same features
   (clip_features) and builds the same batches (prepare_sample + collate). Face detection is
   NOT included in the on-the-fly path, which therefore understates the cache's real advantage.
2. Memory. A child process writes a `--synthetic`-clip cache shard by shard (ShardBuffer, the
   writer the stage uses, with random features of the default geometry, or of a pretrained
   encoder's embeddings with `--audio-encoder` / `--face-encoder`) and computes fold
   statistics; a second, fresh child (as the train stage is a process of its own) iterates one
   training epoch and one test pass, then runs `--train-batches` real training steps. Each
   child's peak RSS is reported.

Prints a markdown table; numbers depend on the machine (2 shared cores here).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pandas as pd
import soundfile as sf
import torch

from aver.config import AlignConfig, CacheConfig, DataConfig, ExtractConfig, Params
from aver.features import FeatureCache, clip_features, collate, make_loader, prepare_sample
from aver.features.cache import ShardBuffer, shard_moments, shard_name
from aver.features.pipeline import ShardLog, run, write_tables
from aver.features.splits import make_splits
from aver.features.window import WindowSpec
from aver.io.atomic import promote_dir
from aver.io.shards import ShardWriter

SR, FPS, W, H, FACE = 16000, 25, 320, 240, 112
CLASSES = ["neutral", "happy", "sad", "angry"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- media generation / decoding
def write_mp4(path: Path, duration: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(duration * FPS)
    yy, xx = np.mgrid[0:H, 0:W]
    base = rng.integers(30, 200, size=3)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(n):
            cx, cy = W / 2 + 40 * np.sin(i / 7), H / 2 + 20 * np.cos(i / 5)
            disk = ((xx - cx) ** 2 + (yy - cy) ** 2) < 60**2
            img = np.empty((H, W, 3), np.uint8)
            img[:] = base
            img[disk] = (230, 180, 150)
            img += rng.integers(0, 12, size=(H, W, 1), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def decode_faces(path: Path) -> dict[str, np.ndarray]:
    """Decode with PyAV; the centre square of each frame, resized, stands in for the face."""
    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        period = 1.0 / float(stream.average_rate or FPS)
        for frame in container.decode(stream):
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            s = min(h, w)
            crop = img[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2]
            frames.append(cv2.resize(crop, (FACE, FACE), interpolation=cv2.INTER_AREA))
            times.append(float(frame.time) + period / 2)
    return {"frames": np.stack(frames), "times": np.asarray(times, np.float32)}


def make_media(root: Path, n: int, duration: float) -> list[tuple[str, str, str]]:
    """mp4 + wav per clip; returns (clip_id, speaker, label)."""
    (root / "media").mkdir(parents=True, exist_ok=True)
    (root / "interim" / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        cid, spk, label = f"clip{i:04d}", f"spk{i % 8:02d}", CLASSES[i % len(CLASSES)]
        write_mp4(root / "media" / f"{cid}.mp4", duration, i)
        rng = np.random.default_rng(i)
        t = np.arange(int(duration * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t) + rng.normal(0, 0.02, len(t))
        sf.write(root / "interim" / "audio" / f"{cid}.wav", wave.astype(np.float32), SR)
        rows.append((cid, spk, label))
    return rows


def stage_inputs(root: Path, rows: list[tuple[str, str, str]], duration: float) -> Params:
    """raw/index.csv, dataset.json, manifest.csv and a face store built from the decoded mp4s."""
    raw, interim, faces = root / "raw", root / "interim", root / "faces"
    raw.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        [{"clip_id": c, "path": f"media/{c}.mp4", "label": lb, "speaker": s} for c, s, lb in rows]
    ).to_csv(raw / "index.csv", index=False)
    (raw / "dataset.json").write_text(
        json.dumps({"name": "bench", "classes": CLASSES, "n_folds": 4, "n_clips": len(rows)})
    )
    pd.DataFrame(
        [{"clip_id": c, "audio": f"audio/{c}.wav", "duration_s": duration} for c, _, _ in rows]
    ).to_csv(interim / "manifest.csv", index=False)
    writer = ShardWriter(faces)
    for cid, _, _ in rows:
        f = decode_faces(root / "media" / f"{cid}.mp4")
        n = len(f["times"])
        writer.add(cid, **f, detected=np.ones(n, bool), landmarks=np.zeros((n, 5, 2), np.float32))
    idx = writer.close()
    pd.DataFrame(
        {
            "clip_id": idx["key"], "shard": idx["shard"], "offset": idx["offset"],
            "n_frames": idx["length"], "detection_rate": 1.0, "fps": float(FPS),
        }
    ).to_csv(faces / "index.csv", index=False)  # fmt: skip
    return Params(
        data=DataConfig(root=str(raw)),
        extract=ExtractConfig(out=str(interim), sample_rate=SR),
        align=AlignConfig(out=str(faces), size=FACE),
        cache=CacheConfig(out=str(root / "features"), shard_clips=16),
    )


def rate(fn, n_items: int, min_s: float = 2.0) -> float:
    """Items per second of `fn()` (which processes n_items), repeated for at least min_s."""
    done, start = 0, time.perf_counter()
    while True:
        fn()
        done += n_items
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return done / elapsed


def throughput(root: Path, n: int, duration: float, batch: int) -> dict[str, float]:
    rows = make_media(root, n, duration)
    params = stage_inputs(root, rows, duration)
    t0 = time.perf_counter()
    cache = FeatureCache(run(params))
    build_s = time.perf_counter() - t0
    stats = cache.fold_stats(0)
    cfg = params.cache

    def on_the_fly() -> None:
        samples = []
        for cid, _, _ in rows:
            faces = decode_faces(root / "media" / f"{cid}.mp4")
            arrays = clip_features(root / "interim" / "audio" / f"{cid}.wav", faces, cfg)
            samples.append(dict(prepare_sample(arrays, stats), clip_id=cid, label=0))
            if len(samples) == batch:
                collate(samples)
                samples = []
        if samples:
            collate(samples)

    n_train = len(cache.split_ids(0, "train"))
    n_test = len(cache.split_ids(0, "test"))
    train = make_loader(cache, 0, "train", batch, train=True)
    test = make_loader(cache, 0, "test", batch, train=False)
    return {
        "media": rate(on_the_fly, n, min_s=3.0),
        "cache_eval": rate(lambda: list(test), n_test),
        "cache_train": rate(lambda: list(train), n_train),
        "build_s": build_s,
    }


# ---------------------------------------------------------------- synthetic 10k cache (child)
def random_row(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random cached values: float features/embeddings ~ N(0, 1), uint8 pixels uniform."""
    if dtype == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.standard_normal(size=shape, dtype=np.float32).astype(dtype)


def train_epoch(cache: FeatureCache, loader, max_batches: int) -> float:
    """Clips/s of real training steps (default msan, AdamW) on the cache's batches."""
    from aver.config import TrainConfig
    from aver.models import build_model
    from aver.training.folds import cache_dims

    model = build_model(TrainConfig().model, n_classes=len(CLASSES), **cache_dims(cache))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seen, t0 = 0, time.perf_counter()
    for i, b in enumerate(loader):
        if i >= max_batches:
            break
        out = model(b)
        loss = torch.nn.functional.cross_entropy(out.logits, b["label"])
        loss = loss + sum(out.aux_losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(b["clip_id"])
    return seen / (time.perf_counter() - t0)


def synthetic(
    root: Path, n: int, batch: int, encoders: dict[str, Any], train_batches: int
) -> dict[str, float]:
    rss_imports = peak_rss_mb()
    cfg = CacheConfig(out=str(root / "features"), **encoders)
    spec = WindowSpec.from_config(cfg, SR)
    shapes = spec.shapes()
    rng = np.random.default_rng(0)
    ids = [f"syn{i:06d}" for i in range(n)]
    clips = pd.DataFrame(
        {
            "clip_id": ids,
            "label": [CLASSES[i % 4] for i in range(n)],
            "speaker": [f"s{i % 100:03d}" for i in range(n)],
        }
    )
    work = root / "features.partial"
    written = ShardLog()
    buffer = ShardBuffer(shapes, cfg.shard_clips)
    ta, tv = spec.audio_frames, spec.video_frames
    t0 = time.perf_counter()
    for s, start in enumerate(range(0, n, cfg.shard_clips)):
        buffer.clear()
        for cid in ids[start : start + cfg.shard_clips]:
            buffer.add(
                cid,
                {
                    "audio": random_row(rng, *shapes["audio"]),
                    "audio_mask": np.ones(ta, bool),
                    "audio_times": spec.frame_times(ta, 0.0),
                    "video": random_row(rng, *shapes["video"]),
                    "video_mask": np.ones(tv, bool),
                    "video_times": ((np.arange(tv) + 0.5) / cfg.video_fps).astype(np.float32),
                },
            )
        shard_dir = work / shard_name(s)
        buffer.write(shard_dir)
        written.record(shard_dir.name, list(buffer.clip_ids), shard_moments(shard_dir, len(buffer)))
    del buffer
    splits, summary = make_splits(
        clips, protocol="speaker_kfold", n_folds=5, default_folds=5, val_fraction=0.2, seed=0
    )
    write_tables(
        work, clips, written, splits, summary, classes=CLASSES, dataset_name="synthetic",
        cfg=cfg, sample_rate=SR,
    )  # fmt: skip
    promote_dir(work, root / "features")
    write_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in (root / "features").rglob("*.npy"))
    return {
        "arrays": f"audio {shapes['audio'][1]}{list(shapes['audio'][0])}, "
        f"video {shapes['video'][1]}{list(shapes['video'][0])}",
        "clips": n,
        "disk_gb": size / 1e9,
        "write_s": write_s,
        "rss_imports_mb": rss_imports,
        "rss_after_write_mb": peak_rss_mb(),
    }


def read_and_train(root: Path, batch: int, train_batches: int) -> dict[str, float]:
    """In a fresh process (as the train stage is): a train epoch and a test pass through the
    loaders, then real training steps; this process's peak RSS."""
    rss_imports = peak_rss_mb()
    cache = FeatureCache(root / "features")
    train = make_loader(cache, 0, "train", batch, train=True)
    t1 = time.perf_counter()
    n_seen = sum(len(b["clip_id"]) for b in train)
    train_rate = n_seen / (time.perf_counter() - t1)
    n_seen += sum(len(b["clip_id"]) for b in make_loader(cache, 0, "test", batch, train=False))
    fit_rate = train_epoch(cache, make_loader(cache, 0, "train", batch, train=True), train_batches)
    return {
        "seen": n_seen,
        "train_rate": train_rate,
        "fit_rate": fit_rate,
        "rss_read_imports_mb": rss_imports,
        "rss_read_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=48, help="media clips for the throughput run")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per media clip")
    ap.add_argument("--synthetic", type=int, default=10000, help="memory run clips (0: skip)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--audio-encoder", default="logmel", help="synthetic cache's audio input")
    ap.add_argument("--face-encoder", default="crops", help="synthetic cache's face input")
    ap.add_argument("--audio-layers", type=int, nargs="*", default=None)
    ap.add_argument("--train-batches", type=int, default=200, help="training steps measured")
    ap.add_argument("--skip-throughput", action="store_true", help="only the synthetic run")
    ap.add_argument("--child", choices=["synthetic", "read"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    encoders = {"audio_encoder": args.audio_encoder, "face_encoder": args.face_encoder,
                "audio_layers": args.audio_layers}  # fmt: skip
    if args.child == "synthetic":
        res = synthetic(
            Path(args.workdir), args.synthetic, args.batch, encoders, args.train_batches
        )
        print(json.dumps(res))
        return
    if args.child == "read":
        print(json.dumps(read_and_train(Path(args.workdir), args.batch, args.train_batches)))
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="aver-bench-loader-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        tp = None
        if not args.skip_throughput:
            tp = throughput(work / "media", args.clips, args.duration, args.batch)
        syn = None
        if args.synthetic:
            cmd = [sys.executable, __file__, "--child", "synthetic", "--workdir",
                   str(work / "synthetic"), "--synthetic", str(args.synthetic),
                   "--batch", str(args.batch), "--audio-encoder", args.audio_encoder,
                   "--face-encoder", args.face_encoder,
                   "--train-batches", str(args.train_batches)]  # fmt: skip
            if args.audio_layers:
                cmd += ["--audio-layers", *map(str, args.audio_layers)]
            (work / "synthetic").mkdir(exist_ok=True)
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            syn = json.loads(res.stdout.strip().splitlines()[-1])
            cmd[cmd.index("synthetic")] = "read"
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            syn.update(json.loads(res.stdout.strip().splitlines()[-1]))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n`{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print("| measure | value |")
    print("|---|---|")
    if tp:
        print_throughput(tp, args)
    if syn:
        print(f"| synthetic cache arrays per clip | {syn['arrays']} |")
        print(f"| synthetic cache: clips / on disk GB / write s | {syn['clips']} / "
              f"{syn['disk_gb']:.2f} / {syn['write_s']:.0f} |")  # fmt: skip
        print(f"| synthetic cache: train epoch (loader only) clips/s | {syn['train_rate']:.0f} |")
        print(f"| synthetic cache: training steps (msan, AdamW) clips/s | {syn['fit_rate']:.0f} |")
        print(f"| writing process: peak RSS after imports / after writing, MB | "
              f"{syn['rss_imports_mb']:.0f} / {syn['rss_after_write_mb']:.0f} |")  # fmt: skip
        print(f"| training process (fresh): peak RSS after imports / after a train epoch, test "
              f"pass and training steps, MB | {syn['rss_read_imports_mb']:.0f} / "
              f"{syn['rss_read_mb']:.0f} |")  # fmt: skip


def print_throughput(tp: dict[str, float], args: argparse.Namespace) -> None:
    print(f"| on the fly: PyAV decode + wav + features, clips/s ({args.clips} clips of "
          f"{args.duration:g} s) | {tp['media']:.1f} |")  # fmt: skip
    print(f"| cache, eval loader (no augmentation), clips/s | {tp['cache_eval']:.0f} |")
    print(f"| cache, train loader (augmentation), clips/s | {tp['cache_train']:.0f} |")
    print(f"| speed-up eval / train vs on the fly | {tp['cache_eval'] / tp['media']:.0f}x / "
          f"{tp['cache_train'] / tp['media']:.0f}x |")  # fmt: skip
    print(f"| cache stage for {args.clips} clips, s | {tp['build_s']:.1f} |")


if __name__ == "__main__":
    main()

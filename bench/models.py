"""Model benchmark: parameter count and CPU throughput per model and variant.

    python bench/models.py [--batch 8] [--seconds 3] [--threads N] [--face-size 64] [--audio-dim 64]

Default input: the cache defaults, 2 s clips: 200 log-mel frames of 64 bins (100/s) and 10 face
frames of 64x64 (5 fps), 6 classes, default ModelConfig. For each model: trainable parameters,
training-step throughput (forward + backward, train mode, clips/s) and inference throughput
(forward, eval mode, no grad). Prints a markdown table; numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from aver.models import ModelConfig, build_model, model_config

CONFIGS: list[tuple[str, dict]] = [
    *[
        (f"avtca {v}", {"name": "avtca", "variant": v})
        for v in ("it1", "it4", "ct1", "ct4", "full")
    ],
    ("msan none +CTM", {"name": "msan", "position": "none"}),
    ("msan index_rope +CTM", {"name": "msan", "position": "index_rope"}),
    ("msan tarope +CTM", {"name": "msan", "position": "tarope"}),
    ("msan tarope, no CTM", {"name": "msan", "position": "tarope", "ctm_weight": 0.0}),
    ("audio_only", {"name": "audio_only"}),
    ("video_only", {"name": "video_only"}),
    ("late_fusion", {"name": "late_fusion"}),
]


def make_batch(b: int, audio_dim: int, face: int, ta: int = 200, tv: int = 10) -> dict:
    """A full (unpadded) model batch of random clips."""
    g = torch.Generator().manual_seed(0)
    return {
        "audio": torch.randn(b, ta, audio_dim, generator=g),
        "audio_mask": torch.ones(b, ta, dtype=torch.bool),
        "audio_times": ((torch.arange(ta) + 0.5) / 100).expand(b, -1).clone(),
        "video": torch.randn(b, tv, 3, face, face, generator=g),
        "video_mask": torch.ones(b, tv, dtype=torch.bool),
        "video_times": ((torch.arange(tv) + 0.5) / 5).expand(b, -1).clone(),
        "label": torch.arange(b) % 6,
    }


def rate(step, batch_size: int, seconds: float) -> float:
    """Clips per second of `step()` over at least `seconds` (after one warm-up call)."""
    step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 2:
            return n * batch_size / elapsed


def measure(cfg: ModelConfig, batch: dict, face: int, audio_dim: int, seconds: float) -> tuple:
    torch.manual_seed(0)
    model = build_model(cfg, n_classes=6, audio_dim=audio_dim, face_size=face)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    b = batch["label"].shape[0]

    def train_step() -> None:
        model.train()
        out = model(batch)
        loss = F.cross_entropy(out.logits, batch["label"]) + sum(out.aux_losses.values())
        model.zero_grad(set_to_none=True)
        loss.backward()

    def infer_step() -> None:
        model.eval()
        with torch.no_grad():
            model(batch)

    return params, rate(train_step, b, seconds), rate(infer_step, b, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--face-size", type=int, default=64)
    ap.add_argument("--audio-dim", type=int, default=64)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = make_batch(args.batch, args.audio_dim, args.face_size)
    rows = []
    for label, overrides in tqdm(CONFIGS, desc="models"):
        cfg = model_config(**overrides)
        rows.append((label, *measure(cfg, batch, args.face_size, args.audio_dim, args.seconds)))
    d = model_config()
    print(
        f"\nCPU, {torch.get_num_threads()} thread(s), batch {args.batch}, audio 200x"
        f"{args.audio_dim}, video 10x3x{args.face_size}x{args.face_size}, d_model {d.d_model}, "
        f"layers {d.layers}, audio/video channels {d.audio_channels}/{d.video_channels}, "
        f"video_stride {d.video_stride}\n"
    )
    print("| model | parameters | train fwd+bwd (clips/s) | inference (clips/s) |")
    print("|---|---:|---:|---:|")
    for label, params, train, infer in rows:
        print(f"| {label} | {params:,} | {train:.1f} | {infer:.1f} |")


if __name__ == "__main__":
    main()

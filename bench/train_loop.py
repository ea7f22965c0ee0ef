"""Training loop vs its floor: clips/s of an epoch through the real loader and loop, next to
the same model's bare forward + backward + optimiser step on in-memory tensors.

Builds a synthetic feature cache through the real cache stage (the tests' generator, default
cache geometry; or uses --cache), sets up fold 0 as the train stage does
(aver.training.folds.prepare_fold: seeded model, real make_loader), then per round, after one
warm-up epoch of each:
- loop: one `aver.training.loop.train_epoch` (the real loader, device copies, AMP, schedule,
  loss, clipping, step losses and metrics) over the fold's training split;
- floor: the same model and optimiser over the same batches already on the device (collected
  once from the loader), forward + total_loss + backward + step, nothing else;
- loader: the training loader alone (no model).
Prints clips/s (the best of --rounds: the least disturbed on a shared machine) and the loop's
overhead over the floor (goal < 20%). On
CUDA (--device cuda) also the GPU's busy share during the loop epochs (torch.cuda.utilization
sampled every 50 ms; needs pynvml). --profile prints the loop epoch's top functions (cProfile).

    python bench/train_loop.py [--speakers 8 --per-class 6] [--batch 16] [--rounds 3]
        [--model msan] [--device cpu|cuda] [--workers 0] [--threads N] [--cache DIR] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

import torch  # noqa: E402

from aver import threads  # noqa: E402
from aver.config import parse_params  # noqa: E402
from aver.features import FeatureCache  # noqa: E402
from aver.inference import autocast, model_inputs, move_batch  # noqa: E402
from aver.training.folds import prepare_fold  # noqa: E402
from aver.training.loop import _optimizer_step, total_loss, train_epoch  # noqa: E402
from aver.training.optim import Schedule, build_optimizer  # noqa: E402
from tests.features.conftest import build_cache, standard_clips  # noqa: E402


def make_cache(workdir: Path, speakers: int, per_class: int) -> Path:
    """A real cache of speakers x 2 classes x per_class synthetic clips, default geometry."""
    return build_cache(workdir / "cache", standard_clips(speakers=speakers, per_class=per_class))


def params_for(cache: Path, args: argparse.Namespace) -> Any:
    return parse_params(
        {
            "cache": {"out": str(cache)},
            "train": {
                "out": str(cache.parent / "models"),
                "epochs": 1000,  # a long schedule: every measured epoch runs at a similar lr
                "batch_size": args.batch,
                "folds": [0],
                "device": args.device,
                "num_workers": args.workers,
                "early_stop_patience": None,
                "model": {"name": args.model},
            },
        }
    )


class GpuBusy:
    """Mean torch.cuda.utilization() sampled every 50 ms while running (None off CUDA)."""

    def __init__(self, device: torch.device):
        self.on = device.type == "cuda"
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        if self.on:
            try:
                torch.cuda.utilization()
            except Exception as err:  # pynvml missing
                print(f"GPU busy: n/a ({err})")
                self.on = False
                return self
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(int(torch.cuda.utilization()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="an existing feature cache")
    ap.add_argument("--speakers", type=int, default=8)
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="msan")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (num_workers)")
    ap.add_argument("--profile", action="store_true", help="cProfile one loop epoch")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: aver.threads policy)"
    )
    args = ap.parse_args()
    threads.apply(cores=args.threads)  # as the train stage does (AVER_THREADS still wins)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aver-bench-loop-"))
    t0 = time.perf_counter()
    cache = args.cache or make_cache(workdir, args.speakers, args.per_class)
    print(f"cache: {cache} ({time.perf_counter() - t0:.1f} s)")
    params = params_for(Path(cache), args)
    cfg = params.train
    setup = prepare_fold(params, FeatureCache(cache), 0)
    from aver.inference import resolve_device

    device = resolve_device(cfg.device)
    model = setup.model.to(device)
    use_amp = cfg.amp and device.type == "cuda"
    optimizer = build_optimizer(model, cfg)
    schedule = Schedule(optimizer, cfg, len(setup.train_loader))
    scaler = (
        torch.amp.GradScaler("cuda", enabled=not torch.cuda.is_bf16_supported())
        if use_amp
        else None
    )
    n_classes = len(setup.classes)
    batches = [move_batch(b, device) for b in setup.train_loader]  # the floor's inputs
    clips = sum(len(b["label"]) for b in batches)
    print(
        f"model {args.model}, device {device}, {clips} training clips in {len(batches)} "
        f"batches of <= {args.batch}, workers {args.workers}, torch threads "
        f"{torch.get_num_threads()}"
    )

    def loop_epoch(epoch: int) -> float:
        t = time.perf_counter()
        train_epoch(
            model, setup.train_loader, optimizer, schedule, scaler, cfg, epoch, device,
            use_amp, n_classes, False,
        )  # fmt: skip
        sync(device)
        return clips / (time.perf_counter() - t)

    def floor_epoch() -> float:
        sync(device)
        t = time.perf_counter()
        model.train()
        for b in batches:
            with autocast(device, use_amp):
                out = model(model_inputs(b))
                loss = total_loss(out, b["label"], cfg.label_smoothing)
            _optimizer_step(model, optimizer, scaler, loss, cfg.grad_clip)
        sync(device)
        return clips / (time.perf_counter() - t)

    def loader_epoch() -> float:
        t = time.perf_counter()
        n = sum(len(b["label"]) for b in setup.train_loader)
        return n / (time.perf_counter() - t)

    loop_epoch(0), floor_epoch()  # warm-up (allocator, autotuning, worker start)
    rates: dict[str, list[float]] = {"loop": [], "floor": [], "loader": []}
    with GpuBusy(device) as busy:
        for r in range(args.rounds):
            order = ("loop", "floor") if r % 2 == 0 else ("floor", "loop")
            for name in order:
                rates[name].append(loop_epoch(r + 1) if name == "loop" else floor_epoch())
    for _ in range(args.rounds):
        rates["loader"].append(loader_epoch())
    med = {k: max(v) for k, v in rates.items()}  # the least disturbed round
    overhead = med["floor"] / med["loop"] - 1
    print()
    print(f"| measure | clips/s (best of {args.rounds}) |")
    print("|---|---|")
    print(f"| floor: forward+backward+step on in-memory tensors | {med['floor']:.1f} |")
    print(f"| loop: aver.training.loop.train_epoch via make_loader | {med['loop']:.1f} |")
    print(f"| loader alone (no model) | {med['loader']:.1f} |")
    print(f"\nloop overhead over the floor: {100 * overhead:+.1f}% (goal < 20%)")
    if device.type == "cuda":
        m = busy.mean()
        print(f"GPU busy (floor + loop epochs): {'n/a' if m is None else f'{m:.0f}%'}")
        with GpuBusy(device) as only_loop:
            loop_epoch(args.rounds + 1)
        m = only_loop.mean()
        print(f"GPU busy (one loop epoch): {'n/a' if m is None else f'{m:.0f}%'} (goal >= 90%)")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        loop_epoch(args.rounds + 2)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()

"""Alignment probe: can MSAN relate audio and video tokens that occur at the same instant?

    python bench/alignment_probe.py [--seeds 3] [--steps 800] [--workers 2] [--small]
        [--positions none index_rope tarope] [--quick]

A synthetic tensor-level task. Each clip is 1 s of noise tokens: audio at 100 tokens/s, video at
25 tokens/s (8 features each, N(0, 1)). An event (a fixed direction per modality, amplitude 4)
lasts 40 ms: one video token and 4 audio tokens, at random times. Label 1 if the two events'
centres coincide (|t_a - t_v| <= 40 ms; positives are drawn within 30 ms), 0 if they are
100-500 ms apart. Each modality alone is uninformative, so the task is solvable only by relating
tokens across modalities at the same instant.

The MSAN core (aver.models.MSANCore; the tokens go straight into its linear projections) is
trained with position none / index_rope / tarope, with and without CTM, on identical data, budget
and initial seed per seed. Prints a markdown table of test accuracy (mean and std over seeds).
Everything else is ModelConfig's defaults (d_model, heads, layers, dropout, rope_base, tau_s,
ctm_delta_s, ctm_temperature, ctm_dim): the probe tests the settings users get. `--small` uses
the earlier probe width (d_model 32, dropout 0, ctm_dim 16), still with the default rope_base,
tau_s and CTM settings.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from aver.models import MSANConfig, MSANCore

RATE_A, RATE_V, DURATION, FEAT, AMP, BATCH, LR = 100, 25, 1.0, 8, 4.0, 32, 3e-3
EVENT_S = 0.04  # an event lasts one video frame: 4 audio tokens
TA, TV = int(RATE_A * DURATION), int(RATE_V * DURATION)
POSITIONS = ("none", "index_rope", "tarope")


def make_data(n: int, seed: int) -> dict[str, torch.Tensor]:
    """n clips, half coinciding events; times are token centres in seconds."""
    rng = np.random.default_rng(seed)
    dirs = np.random.default_rng(12345).standard_normal((2, FEAT))  # fixed event patterns
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    audio = rng.standard_normal((n, TA, FEAT)).astype(np.float32)
    video = rng.standard_normal((n, TV, FEAT)).astype(np.float32)
    t_a_grid = (np.arange(TA) + 0.5) / RATE_A
    t_v_grid = (np.arange(TV) + 0.5) / RATE_V
    label = np.zeros(n, dtype=np.int64)
    label[: n // 2] = 1
    rng.shuffle(label)
    n_a = round(EVENT_S * RATE_A)
    for i in range(n):
        while True:
            iv = int(rng.integers(1, TV - 1))
            if label[i]:
                dt = rng.uniform(-0.03, 0.03)
            else:
                dt = rng.choice([-1, 1]) * rng.uniform(0.1, 0.5)
            start = int(np.argmin(np.abs(t_a_grid - (t_v_grid[iv] + dt)))) - n_a // 2
            centre = t_a_grid[start : start + n_a].mean() if start >= 0 else -1.0
            ok = start >= 0 and start + n_a <= TA
            if ok and (abs(centre - t_v_grid[iv]) <= 0.04) == bool(label[i]):
                break
        audio[i, start : start + n_a] += AMP * dirs[0]
        video[i, iv] += AMP * dirs[1]
    return {
        "a": torch.from_numpy(audio),
        "at": torch.from_numpy(t_a_grid.astype(np.float32)).expand(n, -1),
        "v": torch.from_numpy(video),
        "vt": torch.from_numpy(t_v_grid.astype(np.float32)).expand(n, -1),
        "y": torch.from_numpy(label),
    }


def _forward(model: MSANCore, data: dict, idx: torch.Tensor):
    a, v = data["a"][idx], data["v"][idx]
    am = torch.ones(a.shape[:2], dtype=torch.bool)
    vm = torch.ones(v.shape[:2], dtype=torch.bool)
    return model(a, am, data["at"][idx], v, vm, data["vt"][idx])


SMALL = {"d_model": 32, "heads": 4, "layers": 2, "dropout": 0.0, "ctm_dim": 16}


def probe_config(position: str, ctm_weight: float, small: bool = False) -> MSANConfig:
    """msan with this position and CTM weight; the rest ModelConfig's defaults (or SMALL)."""
    return MSANConfig(position=position, ctm_weight=ctm_weight, **(SMALL if small else {}))


def run_one(job: tuple[str, float, int, int, int, int, bool]) -> dict:
    """Train one configuration on one seed's data; returns its test accuracy."""
    position, ctm_weight, seed, steps, n_train, n_test, small = job
    torch.set_num_threads(1)
    train, test = make_data(n_train, 1000 + seed), make_data(n_test, 2000 + seed)
    cfg = probe_config(position, ctm_weight, small)
    torch.manual_seed(seed)
    model = MSANCore(FEAT, FEAT, 2, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 if i < steps * 0.8 else 0.3)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, n_train, (BATCH,), generator=gen)
        out = _forward(model, train, idx)
        loss = F.cross_entropy(out.logits, train["y"][idx]) + sum(out.aux_losses.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for chunk in torch.arange(n_test).split(256):
            correct += int(
                (_forward(model, test, chunk).logits.argmax(1) == test["y"][chunk]).sum()
            )
    return {
        "position": position,
        "ctm": ctm_weight,
        "seed": seed,
        "acc": correct / n_test,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--train", type=int, default=4096, help="training clips")
    ap.add_argument("--test", type=int, default=1024, help="test clips")
    ap.add_argument("--ctm-weight", type=float, default=0.1)
    ap.add_argument("--small", action="store_true", help="d_model 32, dropout 0, ctm_dim 16")
    ap.add_argument("--workers", type=int, default=2, help="processes (one thread each)")
    ap.add_argument("--positions", nargs="+", choices=POSITIONS, default=list(POSITIONS))
    ap.add_argument("--quick", action="store_true", help="1 seed, 100 steps (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.steps = 1, 100
    jobs = [
        (p, w, s, args.steps, args.train, args.test, args.small)
        for s in range(args.seeds)
        for p in args.positions
        for w in (0.0, args.ctm_weight)
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = []
        for r in tqdm(pool.map(run_one, jobs), total=len(jobs), desc="probe runs"):
            results.append(r)  # one line per run as it finishes (partial runs stay readable)
            tqdm.write(f"{r['position']} ctm {r['ctm']:g} seed {r['seed']}: {100 * r['acc']:.1f}%")
    total = time.perf_counter() - start
    cfg = probe_config("tarope", args.ctm_weight, args.small)
    print(
        f"\nAlignment probe: {args.seeds} seeds x {args.steps} steps (batch {BATCH}, AdamW {LR:g}, "
        "x0.3 for the last 20%; "
        f"rope_base {cfg.rope_base:g}, tau_s {cfg.tau_s:g}, ctm_delta_s {cfg.ctm_delta_s:g}, "
        f"ctm_temperature {cfg.ctm_temperature:g}, d_model {cfg.d_model}, {cfg.heads} heads, "
        f"{cfg.layers} layers, dropout {cfg.dropout:g}), "
        f"{args.train} train / {args.test} test clips, chance 50%; "
        f"{total:.0f} s wall on {args.workers} worker(s)\n"
    )
    print("| position | CTM weight | test accuracy mean | std | per seed | s/run |")
    print("|---|---:|---:|---:|---|---:|")
    for p in args.positions:
        for w in (0.0, args.ctm_weight):
            mine = [r for r in results if r["position"] == p and r["ctm"] == w]
            accs = [r["acc"] for r in mine]
            secs = np.mean([r["seconds"] for r in mine])
            per = ", ".join(f"{100 * a:.1f}" for a in accs)
            print(
                f"| {p} | {w:g} | {100 * np.mean(accs):.1f}% | {100 * np.std(accs):.1f} "
                f"| {per} | {secs:.0f} |"
            )


if __name__ == "__main__":
    main()

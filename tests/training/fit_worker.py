"""Run a small `fit` in its own process (the resume-after-kill test SIGKILLs it).

python -m tests.training.fit_worker CKPT_DIR EPOCHS PAUSE_AT RESULT_JSON
Prints "epoch N" after each checkpointed epoch and idles a minute after epoch PAUSE_AT (0: never)
so the test can kill it there; writes the FitResult summary as JSON at the end.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from aver.config import TrainConfig
from aver.training.loop import fit, seed_everything
from tests.training.tiny import N_CLASSES, TinyAV, loaders


def main() -> None:
    ckpt, epochs, pause_at, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    cfg = TrainConfig(
        epochs=epochs, lr=0.01, early_stop_patience=None, device="cpu", warmup_epochs=1
    )
    seed_everything(cfg.seed)
    model = TinyAV()
    train, val = loaders()

    def on_epoch(epoch: int, metrics: dict) -> None:
        print(f"epoch {epoch}", flush=True)
        if epoch == pause_at:
            time.sleep(60)

    res = fit(
        model,
        train,
        val,
        cfg,
        n_classes=N_CLASSES,
        checkpoint_dir=ckpt,
        on_epoch=on_epoch,
        progress=False,
    )
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    with open(out, "w") as fh:
        json.dump(
            {
                "start_epoch": res.start_epoch,
                "epochs_done": res.epochs_done,
                "history": res.history,
                "weights_sum": float(weights.double().sum()),
            },
            fh,
        )


if __name__ == "__main__":
    main()

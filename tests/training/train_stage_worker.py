"""Run the train stage in its own process (the stage-level kill test SIGKILLs it).

python -m tests.training.train_stage_worker CACHE_DIR OUT_DIR EPOCHS [EXECUTOR]
EXECUTOR ray: 2 Ray Train workers (RAY_ADDRESS: join that Ray).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from aver.training.pipeline import run
from tests.tracking.conftest import tiny_params

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    cache, out, epochs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    executor = sys.argv[4] if len(sys.argv) > 4 else "local"
    workers = 2 if executor == "ray" else 1
    params = tiny_params(
        cache,
        out,
        prefix="kill",
        epochs=epochs,
        early_stop_patience=None,
        executor=executor,
        workers=workers,
    )
    run(params)

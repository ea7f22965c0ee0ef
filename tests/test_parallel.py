"""imap_unordered: a stopped caller does not wait for the items still queued."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from aver.parallel import imap_unordered


def _slow(path: str) -> str:
    """Mark the item as started, then take a while."""
    Path(path).write_text("")
    time.sleep(0.5)
    return path


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs for a process pool")
def test_interrupted_pool_drops_queued_items(tmp_path):
    items = [str(tmp_path / f"{i}.started") for i in range(20)]
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in imap_unordered(_slow, items, workers=2):
            raise KeyboardInterrupt  # Ctrl-C / SIGTERM in the caller after the first result
    elapsed = time.monotonic() - t0
    started = len(list(tmp_path.glob("*.started")))
    # Only the items already handed to the two workers ran (the pool queues one extra each).
    assert started <= 6, f"{started} of 20 items ran after the interrupt"
    assert elapsed < 4.0, f"the interrupt waited {elapsed:.1f} s for queued items"

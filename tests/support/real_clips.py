"""The real third-party clips in ../shared/data/real-clips (never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_CLIPS = REPO.parent / "shared" / "data" / "real-clips"


def real_clips(dataset: str | None = None) -> pd.DataFrame:
    """clips.csv with absolute `file` paths and `clip_id`; skips the test when it is absent."""
    table = REAL_CLIPS / "clips.csv"
    if not table.is_file():
        pytest.skip(f"{table} is absent: the real clips sit in ../shared beside the checkout")
    clips = pd.read_csv(table, dtype={"speaker": str})
    clips["file"] = [str(REAL_CLIPS / p) for p in clips["path"]]
    clips["clip_id"] = [Path(p).stem for p in clips["path"]]
    if dataset is not None:
        clips = clips[clips["dataset"] == dataset].reset_index(drop=True)
    return clips


def clip_ids() -> list[str]:
    """Parametrisation ids: every clip listed, or none when the folder is absent."""
    table = REAL_CLIPS / "clips.csv"
    if not table.is_file():
        return []
    return [Path(p).stem for p in pd.read_csv(table)["path"]]

"""The aligned-face store (`align.out`): a few memory-mapped shards plus `index.csv`.

Per clip: `frames` uint8 (T, S, S, 3) RGB, `times` float32 (T,) seconds (frame centres on the
extract time axis), `detected` bool (T,), `landmarks` float32 (T, 5, 2) source-frame pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aver.contracts import FACE_INDEX
from aver.errors import DataError
from aver.io.shards import ShardReader, ShardWriter

if TYPE_CHECKING:
    import pandas as pd  # imported where used: `aver predict` starts without it

ARRAYS = ("frames", "times", "detected", "landmarks")
INDEX_COLUMNS = list(FACE_INDEX.columns)
_FIX = FACE_INDEX.fix


def write_store(
    out_dir: str | Path, clips: Iterable[tuple[str, dict[str, np.ndarray], dict]], max_bytes: int
) -> pd.DataFrame:
    """Pack (clip_id, arrays, meta) into shards and write `index.csv`; meta holds fps and rate."""
    import pandas as pd

    out_dir = Path(out_dir)
    writer = ShardWriter(out_dir, max_bytes=max_bytes)
    meta: dict[str, dict] = {}
    for clip_id, arrays, info in clips:
        writer.add(clip_id, **{name: arrays[name] for name in ARRAYS})
        meta[clip_id] = info
    shards = writer.close()
    rows = [
        {
            "clip_id": r.key,
            "shard": r.shard,
            "offset": r.offset,
            "n_frames": r.length,
            "detection_rate": round(float(meta[r.key]["detection_rate"]), 6),
            "fps": float(meta[r.key]["fps"]),
        }
        for r in shards.itertuples()
    ]
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS).sort_values("clip_id")
    FACE_INDEX.write(out_dir, index)
    return index


class FaceStore:
    """Reads the align stage's output: `FaceStore(path).load(clip_id) -> dict of arrays`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.index = FACE_INDEX.read(self.path)
        self._reader = ShardReader(self.path)

    @property
    def clip_ids(self) -> list[str]:
        return list(self.index["clip_id"])

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._reader

    def load(self, clip_id: str) -> dict[str, np.ndarray]:
        """frames, times, detected, landmarks of one clip (read-only memory-mapped views)."""
        if clip_id not in self._reader:
            raise DataError(
                f"clip {clip_id!r} is not in the aligned-face store",
                path=self.path / "index.csv",
                fix="check align/failures.csv for it, or rerun the align stage",
            )
        shard = self.path / str(self._reader.index.loc[clip_id, "shard"])
        for name in ARRAYS:
            if not (shard / f"{name}.npy").is_file():
                raise DataError("shard file missing", path=shard / f"{name}.npy", fix=_FIX)
        arrays = self._reader.get(clip_id)
        n = int(self._reader.index.loc[clip_id, "length"])
        for name in ARRAYS:
            if len(arrays[name]) != n:
                raise DataError(
                    f"shard holds {len(arrays[name])} rows of {clip_id!r}, index says {n}",
                    path=shard / f"{name}.npy",
                    fix=_FIX,
                )
        return {name: arrays[name] for name in ARRAYS}

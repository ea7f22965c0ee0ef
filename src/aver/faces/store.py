"""The aligned-face store (`align.out`): a few memory-mapped shards plus `index.csv`.

Per clip: `frames` uint8 (T, S, S, 3) RGB, `times` float32 (T,) seconds (frame centres on the
extract time axis), `detected` bool (T,), `landmarks` float32 (T, 5, 2) source-frame pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from aver.errors import DataError
from aver.io.atomic import write_csv
from aver.io.shards import ShardReader, ShardWriter

ARRAYS = ("frames", "times", "detected", "landmarks")
INDEX_COLUMNS = ["clip_id", "shard", "offset", "n_frames", "detection_rate", "fps"]
_FIX = "delete the align output and rerun the stage (dvc repro align)"


def write_store(
    out_dir: str | Path, clips: Iterable[tuple[str, dict[str, np.ndarray], dict]], max_bytes: int
) -> pd.DataFrame:
    """Pack (clip_id, arrays, meta) into shards and write `index.csv`; meta holds fps and rate."""
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
    write_csv(out_dir / "index.csv", index)
    return index


class FaceStore:
    """Reads the align stage's output: `FaceStore(path).load(clip_id) -> dict of arrays`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_path = self.path / "index.csv"
        if not index_path.is_file():
            raise DataError("aligned-face index missing", path=index_path, fix=_FIX)
        try:
            self.index = pd.read_csv(index_path, dtype={"clip_id": str, "shard": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise DataError(f"unreadable index ({err})", path=index_path, fix=_FIX) from None
        missing = set(INDEX_COLUMNS) - set(self.index.columns)
        if missing:
            raise DataError(f"index lacks columns {sorted(missing)}", path=index_path, fix=_FIX)
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

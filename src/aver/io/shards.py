"""A few large memory-mappable shards plus an index, instead of many small files.

Each key (e.g. a clip id) holds named arrays that share a leading length. A shard is a directory
`shard-NNNNN/` with one `.npy` per array name (all keys' arrays concatenated); `index.csv` maps
key -> (shard, offset, length). Shards and the index are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aver.errors import DataError
from aver.io.atomic import write_csv, write_npy

if TYPE_CHECKING:
    import pandas as pd  # imported where used: `aver predict` starts without it


class ShardWriter:
    """Buffers per-key arrays and flushes a shard when it reaches `max_bytes`."""

    def __init__(self, out_dir: str | Path, max_bytes: int = 256 << 20, prefix: str = "shard"):
        self.out_dir = Path(out_dir)
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.rows: list[dict] = []
        self._buf: dict[str, list[np.ndarray]] = {}
        self._buf_keys: list[tuple[str, int]] = []
        self._bytes = 0
        self._shard = 0

    def add(self, key: str, **arrays: np.ndarray) -> None:
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"arrays of {key!r} must share a leading length, got {lengths}")
        if self._buf and set(arrays) != set(self._buf):
            raise ValueError(f"{key!r}: array names {sorted(arrays)} != {sorted(self._buf)}")
        for name, arr in arrays.items():
            self._buf.setdefault(name, []).append(np.ascontiguousarray(arr))
        self._buf_keys.append((key, lengths.pop()))
        self._bytes += sum(a.nbytes for a in arrays.values())
        if self._bytes >= self.max_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buf_keys:
            return
        name = f"{self.prefix}-{self._shard:05d}"
        for arr_name, parts in self._buf.items():
            write_npy(self.out_dir / name / f"{arr_name}.npy", np.concatenate(parts))
        offset = 0
        for key, length in self._buf_keys:
            self.rows.append({"key": key, "shard": name, "offset": offset, "length": length})
            offset += length
        self._buf, self._buf_keys, self._bytes = {}, [], 0
        self._shard += 1

    def close(self) -> pd.DataFrame:
        """Flush the last shard and write `index.csv`; returns the index."""
        self._flush()
        import pandas as pd

        index = pd.DataFrame(self.rows, columns=["key", "shard", "offset", "length"])
        write_csv(self.out_dir / "shards.csv", index)
        return index


class ShardReader:
    """Memory-maps shards written by ShardWriter."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        index_path = self.out_dir / "shards.csv"
        if not index_path.exists():
            raise DataError(
                "shard index missing",
                path=index_path,
                fix="rerun the stage that writes it (dvc repro)",
            )
        import pandas as pd

        self.index = pd.read_csv(index_path, dtype={"key": str}).set_index("key")
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    def keys(self) -> list[str]:
        return list(self.index.index)

    def __contains__(self, key: str) -> bool:
        return key in self.index.index

    def get(self, key: str) -> dict[str, np.ndarray]:
        row = self.index.loc[key]
        shard_dir = self.out_dir / row["shard"]
        out = {}
        for path in sorted(shard_dir.glob("*.npy")):
            arr = self._map(shard_dir, path)
            out[path.stem] = arr[int(row["offset"]) : int(row["offset"]) + int(row["length"])]
        return out

    def _map(self, shard_dir: Path, path: Path) -> np.ndarray:
        cache_key = (shard_dir.name, path.stem)
        if cache_key not in self._maps:
            try:
                self._maps[cache_key] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:
                raise DataError(
                    f"corrupt shard ({err})",
                    path=path,
                    fix="delete the stage's output directory and rerun it",
                ) from None
        return self._maps[cache_key]

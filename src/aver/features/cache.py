"""The feature cache on disk: fixed-shape `.npy` shards, index.csv, meta.json, stats.json.

Layout of `data/features/`:
    shard-00000/{audio,audio_mask,audio_times,video,video_mask,video_times}.npy  (rows = windows)
    index.csv   clip_id,label,label_idx,speaker,fold,shard,row,split_0..split_{K-1},n_windows,
                <dataset cols>  (a clip's windows are rows row..row+n_windows-1 of its shard)
    meta.json   classes, feature dims, fps, window, windows (rule, hop, cap), protocol, leaky,
                n_folds, array shapes, modalities
    stats.json  {"folds": {"<k>": FoldStats}} from fold k's training clips only

Shards are written one at a time from a fixed buffer (memory is bounded by one shard). Rows are
read with positioned reads from the `.npy` files (no page cache pinned in the process), so any
number of clips can be iterated in bounded memory; `FeatureCache.mmap` gives numpy memmaps.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from aver.contracts import (
    FEATURE_INDEX,
    feature_modalities,
    read_feature_meta,
    read_feature_stats,
)
from aver.errors import DataError
from aver.features.splits import SPLITS, split_column
from aver.features.stats import ClipMoments, FoldStats, clip_moments
from aver.io.atomic import write_npy

FIX = FEATURE_INDEX.fix
Shapes = dict[str, tuple[tuple[int, ...], str]]
STATS_CHUNK = 256  # clips per chunk at most
STATS_CHUNK_BYTES = 64 << 20  # and at most this much float64 per chunk (3 such temporaries)


def shard_name(i: int) -> str:
    return f"shard-{i:05d}"


class ShardBuffer:
    """A shard's rows (one per window of a clip), preallocated for `capacity` rows and grown
    when more come (a clip has one row per window); `write` saves the rows atomically."""

    def __init__(self, shapes: Shapes, capacity: int):
        self.shapes = shapes
        self.capacity = max(1, capacity)
        self.arrays = {k: np.zeros((self.capacity, *s), dtype=d) for k, (s, d) in shapes.items()}
        self.clip_ids: list[str] = []

    def __len__(self) -> int:
        return len(self.clip_ids)

    def _grow(self) -> None:
        self.capacity += max(1, self.capacity // 2)
        for name, arr in self.arrays.items():
            grown = np.zeros((self.capacity, *arr.shape[1:]), dtype=arr.dtype)
            grown[: len(arr)] = arr
            self.arrays[name] = grown

    def truncate(self, n: int) -> None:
        """Forget the rows from `n` on (a clip whose later window failed)."""
        del self.clip_ids[n:]

    def add(self, clip_id: str, arrays: dict[str, np.ndarray]) -> int:
        """Copy one window's arrays into the next row; returns the row."""
        row = len(self.clip_ids)
        if row >= self.capacity:
            self._grow()
        for name, (shape, dtype) in self.shapes.items():
            arr = arrays[name]
            if tuple(arr.shape) != shape:
                raise ValueError(f"{clip_id}: {name} has shape {arr.shape}, expected {shape}")
            self.arrays[name][row] = np.asarray(arr, dtype=dtype)
        self.clip_ids.append(clip_id)
        return row

    def write(self, shard_dir: str | Path) -> None:
        """Write one `.npy` per array (only the filled rows) into `shard_dir`."""
        n = len(self.clip_ids)
        for name, arr in self.arrays.items():
            write_npy(Path(shard_dir) / f"{name}.npy", arr[:n])

    def clear(self) -> None:
        self.clip_ids = []


class NpyRows:
    """Row reader for a C-order `.npy` file using positioned reads; validates header and size."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise DataError("cache shard file missing", path=self.path, fix=FIX)
        try:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                self.offset = fh.tell()
        except (ValueError, OSError, EOFError, SyntaxError) as err:
            raise DataError(f"corrupt cache shard ({err})", path=self.path, fix=FIX) from None
        if fortran or not shape:
            raise DataError("corrupt cache shard (unexpected layout)", path=self.path, fix=FIX)
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        expected = self.offset + self.shape[0] * self.row_bytes
        size = self.path.stat().st_size
        if size != expected:
            raise DataError(
                f"corrupt cache shard (truncated: {size} bytes, expected {expected})",
                path=self.path,
                fix=FIX,
            )
        self._fd: int | None = None
        self._pid = -1

    def _handle(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def read(self, start: int, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) (one row without its leading axis when stop is None)."""
        n = 1 if stop is None else stop - start
        if start < 0 or n < 0 or start + n > self.shape[0]:
            raise IndexError(f"{self.path}: rows {start}:{start + n} out of {self.shape[0]}")
        nbytes = n * self.row_bytes
        buf = os.pread(self._handle(), nbytes, self.offset + start * self.row_bytes)
        if len(buf) != nbytes:
            raise DataError("corrupt cache shard (short read)", path=self.path, fix=FIX)
        arr = np.frombuffer(bytearray(buf), dtype=self.dtype).reshape((n, *self.row_shape))
        return arr[0] if stop is None else arr

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fd"], state["_pid"] = None, -1
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


def shard_moments(shard_dir: str | Path, n: int) -> ClipMoments:
    """Per-clip moments of the first `n` rows of a shard, read in chunks (bounded memory)."""
    names = ("audio", "audio_mask", "video", "video_mask")
    readers = [NpyRows(Path(shard_dir) / f"{k}.npy") for k in names]
    parts = [clip_moments(*(r.read(0, 0) for r in readers))]  # typed empty part (n = 0)
    row_bytes = sum(r.row_bytes * 8 // r.dtype.itemsize for r in readers)  # as float64
    chunk = max(1, min(STATS_CHUNK, STATS_CHUNK_BYTES // max(row_bytes, 1)))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        parts.append(clip_moments(*(r.read(start, stop) for r in readers)))
    for r in readers:
        r.close()
    return ClipMoments.concat(parts)


class FeatureCache:
    """Read access to a feature cache directory (validated on open)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError("feature cache not found", path=self.path, fix=FIX)
        self.meta: dict[str, Any] = read_feature_meta(self.path)
        raw_stats = read_feature_stats(self.path)
        self.index = FEATURE_INDEX.read(self.path)
        try:
            self.stats = {k: FoldStats.from_dict(v) for k, v in raw_stats.items()}
            self.classes: list[str] = list(self.meta["classes"])
            self.n_folds = int(self.meta["n_folds"])
            self.shapes: Shapes = {k: (tuple(v[0]), v[1]) for k, v in self.meta["arrays"].items()}
        except (KeyError, ValueError, TypeError) as err:
            raise DataError(f"corrupt cache metadata ({err})", path=self.path, fix=FIX) from None
        self._pos = {cid: i for i, cid in enumerate(self.index["clip_id"])}
        # the windows of a clip are rows row..row+n_windows-1 (caches before windows: one)
        if "n_windows" in self.index.columns:
            windows = self.index["n_windows"].astype(int).to_numpy()
        else:
            windows = np.ones(len(self.index), np.int64)
        if len(windows) and windows.min() < 1:
            raise DataError("corrupt cache index (n_windows < 1)", path=self.path, fix=FIX)
        self._windows = windows
        last_rows = self.index["row"].astype(int) + windows - 1
        self._readers: dict[tuple[str, str], NpyRows] = {}
        for shard, rows in last_rows.groupby(self.index["shard"]):
            for name, (shape, dtype) in self.shapes.items():
                reader = NpyRows(self.path / str(shard) / f"{name}.npy")
                if reader.row_shape != shape or reader.dtype != np.dtype(dtype):
                    raise DataError(
                        f"cache shard holds {reader.dtype}{reader.shape}, meta.json says "
                        f"{dtype}(*, {', '.join(map(str, shape))})",
                        path=reader.path,
                        fix=FIX,
                    )
                if int(rows.max()) >= reader.shape[0]:
                    raise DataError(
                        f"cache shard has {reader.shape[0]} rows, index.csv needs {rows.max() + 1}",
                        path=reader.path,
                        fix=FIX,
                    )
                self._readers[(str(shard), name)] = reader

    @property
    def modalities(self) -> list[str]:
        """The inputs the clips have (meta.json `modalities`; ["audio"]: no video at all)."""
        try:
            return feature_modalities(self.meta)
        except ValueError as err:
            raise DataError(f"corrupt cache metadata ({err})", path=self.path, fix=FIX) from None

    @property
    def protocol(self) -> str:
        return str(self.meta["protocol"])

    @property
    def leaky(self) -> bool:
        return bool(self.meta["leaky"])

    @property
    def stratify(self) -> str | None:
        """The speaker attribute column the folds were balanced over (None: not balanced)."""
        return (self.meta.get("splits") or {}).get("stratify")

    def __len__(self) -> int:
        return len(self.index)

    def _check_fold(self, fold: int) -> None:
        if not 0 <= fold < self.n_folds:
            raise DataError(
                f"fold {fold} not in cache (0..{self.n_folds - 1})",
                path=self.path / "meta.json",
                fix="pick a fold in range (train.folds / tune.fold)",
            )

    def split_ids(self, fold: int, split: str) -> list[str]:
        """Clip ids of `split` (train/val/test) in fold `fold`, sorted."""
        self._check_fold(fold)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        col = self.index[split_column(fold)]
        return sorted(self.index.loc[col == split, "clip_id"])

    def fold_stats(self, fold: int) -> FoldStats:
        self._check_fold(fold)
        return self.stats[fold]

    def _where(self, clip_id: str) -> tuple[int, str, int]:
        try:
            i = self._pos[clip_id]
        except KeyError:
            raise KeyError(f"{clip_id!r} not in {self.path / 'index.csv'}") from None
        return i, str(self.index.at[i, "shard"]), int(self.index.at[i, "row"])

    def n_windows(self, clip_id: str) -> int:
        """How many windows of the clip the cache holds (aver.windows; 1 in older caches)."""
        return int(self._windows[self._where(clip_id)[0]])

    def read(self, clip_id: str, window: int = 0) -> dict[str, np.ndarray]:
        """The cached arrays of one window of a clip (copies, writable)."""
        i, shard, row = self._where(clip_id)
        if not 0 <= window < self._windows[i]:
            raise IndexError(f"{clip_id}: window {window} not in 0..{self._windows[i] - 1}")
        return {name: self._readers[(shard, name)].read(row + window) for name in self.shapes}

    def read_windows(self, clip_id: str) -> dict[str, np.ndarray]:
        """The cached arrays of every window of a clip, stacked (W, ...)."""
        i, shard, row = self._where(clip_id)
        stop = row + int(self._windows[i])
        return {name: self._readers[(shard, name)].read(row, stop) for name in self.shapes}

    def label_idx(self, clip_id: str) -> int:
        return int(self.index.at[self._pos[clip_id], "label_idx"])

    def mmap(self, shard: str, name: str) -> np.ndarray:
        """A read-only memmap of one array of one shard."""
        return np.load(self.path / shard / f"{name}.npy", mmap_mode="r")

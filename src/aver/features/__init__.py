"""Features: audio (log-mel/MFCC) and face clips on one time window, the cache, splits, loader.

Public entry points:
- `clip_features(audio, faces, cfg)`: one clip's arrays (cache stage and `aver predict`).
- `FeatureCache(path)`: read a cache; `make_loader(...)`: model batches from it.
- `batch_from_arrays(clips, stats)`: one model batch from `clip_features` output.
- `aver.features.pipeline.run(params)`: the cache stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aver.lazy import lazy_exports

# name -> module, imported on first use (`aver predict` needs the statistics, not the cache
# reader and its pandas)
_EXPORTS = {
    "FeatureCache": "cache",
    "batch_from_arrays": "loader", "collate": "loader", "make_loader": "loader",
    "prepare_sample": "loader",
    "FoldStats": "stats",
    "ARRAYS": "window", "WindowSpec": "window", "clip_features": "window",
}  # fmt: skip

if TYPE_CHECKING:
    from aver.features.cache import FeatureCache
    from aver.features.loader import batch_from_arrays, collate, make_loader, prepare_sample
    from aver.features.stats import FoldStats
    from aver.features.window import ARRAYS, WindowSpec, clip_features


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ARRAYS",
    "FeatureCache",
    "FoldStats",
    "WindowSpec",
    "batch_from_arrays",
    "clip_features",
    "collate",
    "make_loader",
    "prepare_sample",
]

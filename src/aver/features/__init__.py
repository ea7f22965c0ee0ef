"""Features: audio (log-mel/MFCC) and face clips on one time window, the cache, splits, loader.

Public entry points:
- `clip_features(audio, faces, cfg)`: one clip's arrays (cache stage and `aver predict`).
- `FeatureCache(path)`: read a cache; `make_loader(...)`: model batches from it.
- `batch_from_arrays(clips, stats)`: one model batch from `clip_features` output.
- `aver.features.pipeline.run(params)`: the cache stage.
"""

from aver.features.cache import FeatureCache
from aver.features.loader import batch_from_arrays, collate, make_loader, prepare_sample
from aver.features.stats import FoldStats
from aver.features.window import ARRAYS, WindowSpec, clip_features

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

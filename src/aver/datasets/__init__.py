"""Dataset registry: `data.dataset` name -> DatasetSpec, each module imported only when asked for.

from aver.datasets import DATASETS, get_dataset
spec = get_dataset(params.data.dataset)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from aver.errors import ConfigError

if TYPE_CHECKING:
    from aver.datasets.base import DatasetSpec

# name -> "module:Class"; imported on demand so one dataset's imports never burden another.
_REGISTRY: dict[str, str] = {
    "demo": "aver.datasets.demo:DemoDataset",
    "ravdess": "aver.datasets.ravdess:RavdessDataset",
    "cremad": "aver.datasets.cremad:CremadDataset",
    "mosei": "aver.datasets.mosei:MoseiDataset",
    "folder": "aver.datasets.folder:FolderDataset",
}

DATASETS: tuple[str, ...] = tuple(_REGISTRY)


def get_dataset(name: str) -> DatasetSpec:
    """A fresh DatasetSpec for `name` (one of DATASETS); ConfigError for an unknown name."""
    target = _REGISTRY.get(name)
    if target is None:
        raise ConfigError(
            f"data.dataset: unknown dataset {name!r}; valid choices: {', '.join(DATASETS)}",
            fix="set data.dataset in params.yaml to one of the valid choices",
        )
    module_name, cls_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)()


__all__ = ["DATASETS", "get_dataset"]

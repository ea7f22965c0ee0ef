"""A package's exports imported on first use (PEP 562), so importing one light submodule does not
load the heavy ones (`aver predict` starts work before torch is imported)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package` for `exports` (name -> submodule). The import
    graph of tests/support/structure.py reads the package's `_EXPORTS` literal."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__

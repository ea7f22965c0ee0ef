"""Read a weights file into a torch module: `weights_only=True`, strict, clear errors.

A state dict is accepted saved plainly, under `state_dict`, with DataParallel's `module.`
prefix, or as a plain zip holding one `.pth` (the retinaface-pytorch release format).
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import torch

from aver.errors import DataError


def load_state_dict(path: str | Path, *, fix: str) -> dict[str, torch.Tensor]:
    """The tensors saved in `path` (`fix`: what to do when it is not a state dict)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        obj = _load_zipped(path, err, fix)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError("not a state dict of tensors", path=path, fix=fix)
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_zipped(path: Path, first_error: Exception, fix: str) -> object:
    """A plain zip holding one .pth."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) == 1:
                with tempfile.TemporaryDirectory() as tmp:
                    inner = zf.extract(members[0], tmp)
                    try:
                        return torch.load(inner, map_location="cpu", weights_only=True)
                    except Exception as err:
                        first_error = err
    raise DataError(
        f"cannot read weights ({type(first_error).__name__}: {first_error})", path=path, fix=fix
    ) from None


def load_into(module: torch.nn.Module, path: str | Path, *, what: str, fix: str) -> torch.nn.Module:
    """Load the state dict in `path` into `module` strictly; DataError naming `path` if not."""
    state = load_state_dict(path, fix=fix)
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[:3]
        raise DataError(
            f"weights do not fit {what}: {' '.join(first)}", path=path, fix=fix
        ) from None
    return module

"""Fixtures for dataset tests: params built from overrides, empty media files, a loopback server."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aver.config import Params, parse_params
from tests.support.http_server import FileServer


def make_params(data: dict[str, Any] | None = None, **sections: Any) -> Params:
    """Validated Params with a `data` section (and any other sections) overridden."""
    return parse_params({"data": data or {}, **sections}, "test params")


def touch(root: Path, *names: str, data: bytes = b"") -> list[Path]:
    """Create files (and their folders) under `root`; return their paths."""
    out = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append(path)
    return out


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive (in memory) of name -> bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv

"""Shared test fixtures: repository paths, the venv, ../shared."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the shared dataset metadata sits beside the checkout)")
    return SHARED


@pytest.fixture(scope="session")
def venv_env() -> dict[str, str]:
    """Environment whose PATH starts with this interpreter's bin dir (dvc, python, ray)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def http_server():
    """A loopback HTTP server with fault injection (tests/support/http_server.py)."""
    from tests.support.http_server import FileServer

    with FileServer() as server:
        yield server

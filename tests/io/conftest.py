"""Fixtures for the io tests: a loopback HTTP file server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.http_server import FileServer


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    """A started FileServer on 127.0.0.1 with no files; add them with `add`."""
    with FileServer() as srv:
        yield srv

"""Reuse the tracking tests' stores and tiny real feature cache."""

from tests.tracking.conftest import embedded_root, embedded_store, tiny_cache  # noqa: F401

"""MLflow stores for tests: the default embedded sqlite store, and a real `mlflow server`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.support.mlflow_server import mlflow_server as running_mlflow_server

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def embedded_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One working directory for all embedded-store tests (the sqlite schema is built once)."""
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture
def embedded_store(embedded_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in `embedded_root` with no MLFLOW_TRACKING_URI: the default store applies."""
    monkeypatch.chdir(embedded_root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield embedded_root
    _reset_mlflow()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free loopback port (own sqlite + artifact dir); its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(
        root / "server.db", root / "artifacts", cwd=root, log_path=root / "server.log"
    ) as url:
        yield url


@pytest.fixture
def server_store(mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run in an empty directory with MLFLOW_TRACKING_URI pointing at the test server."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    yield mlflow_server
    _reset_mlflow()


def _reset_mlflow() -> None:
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 24-clip feature cache (6 speakers, 2 classes, 3 folds) from the cache stage."""
    from tests.features.conftest import build_cache, standard_clips

    return build_cache(tmp_path_factory.mktemp("cache"), standard_clips())


def tiny_params(cache: Path, out: Path, *, prefix: str = "aver", **train: object):
    """Params for a seconds-long training run on `cache`, outputs under `out`."""
    from aver.config import parse_params

    base: dict[str, object] = {
        "out": str(out / "models"),
        "epochs": 2,
        "batch_size": 4,
        "folds": [0],
        "device": "cpu",
        "warmup_epochs": 0,
        "model": {"name": "audio_only", "d_model": 16, "heads": 2, "layers": 1},
    }
    return parse_params(
        {
            "cache": {"out": str(cache)},
            "train": {**base, **train},
            "evaluate": {"out": str(out / "reports")},
            "tracking": {"experiment_prefix": prefix},
        }
    )

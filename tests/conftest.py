"""Shared test fixtures: repository paths, the venv, ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu`-marked tests where CUDA is not available (torch imported only if any)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker); torch.cuda.is_available() is False")
    for item in gpu:
        item.add_marker(skip)


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
    """Env with this interpreter's bin dir first on PATH and this checkout's src importable."""
    from tests.support.pipeline import interpreter_env

    env = interpreter_env()
    # Subprocesses import this checkout's aver, also when run by another clone's interpreter.
    env["PYTHONPATH"] = str(REPO / "src")
    return env


@pytest.fixture
def http_server():
    """A loopback HTTP server with fault injection (tests/support/http_server.py)."""
    from tests.support.http_server import FileServer

    with FileServer() as server:
        yield server


@pytest.fixture
def tiny_repo(tmp_path, venv_env):
    """A throw-away git repo copy of this checkout with a tiny demo config, and its env."""
    from tests.support.pipeline import TINY, make_pipeline_repo, pipeline_env

    repo = make_pipeline_repo(tmp_path / "repo", TINY)
    return repo, pipeline_env(venv_env, repo)


@pytest.fixture(scope="session")
def demo_pipeline(tmp_path_factory, venv_env):
    """A repo copy where `dvc repro` ran the whole pipeline on a small demo (once per session).

    Returns (repo, env). Tests must not modify its outputs; copy what they change.
    """
    from tests.support.pipeline import TINY_PIPELINE, dvc, make_pipeline_repo, pipeline_env

    repo = make_pipeline_repo(tmp_path_factory.mktemp("pipeline") / "repo", TINY_PIPELINE)
    env = pipeline_env(venv_env, repo)
    dvc(repo, env, "repro", timeout=1800)
    return repo, env


@pytest.fixture(scope="session")
def real_extracted(tmp_path_factory) -> dict[str, tuple[dict, Path, Path]]:
    """Every real clip (../shared/data/real-clips) through extract once: clip_id -> (manifest
    row, wav, mp4). Skips when the clips are absent."""
    from aver.config import ExtractConfig
    from aver.media.extract import extract_clip
    from tests.support.real_clips import real_clips

    out = tmp_path_factory.mktemp("real-extract")
    rows = {}
    for clip in real_clips().itertuples():
        audio, video = out / f"{clip.clip_id}.wav", out / f"{clip.clip_id}.mp4"
        rows[clip.clip_id] = (extract_clip(clip.file, audio, video, ExtractConfig()), audio, video)
    return rows


@pytest.fixture(scope="session")
def encoder_weights_dir(tmp_path_factory):
    """A factory: `encoder_weights_dir(*names, seed=0)` -> a directory holding randomly
    initialised weights of the named pretrained encoders (aver.encoders) under their library
    file names, as `cache.encoder_weights` takes it; made once per (names, seed)."""
    made: dict[tuple[tuple[str, ...], int], Path] = {}

    def make(*names: str, seed: int = 0) -> Path:
        key = (tuple(sorted(names)), seed)
        if key not in made:
            import torch

            from aver.encoders import AUDIO_ENCODERS, FACE_ENCODERS
            from aver.encoders.audio import build_model as build_audio
            from aver.encoders.face import build_model as build_face

            out = tmp_path_factory.mktemp(f"weights-{'-'.join(key[0])}-{seed}")
            for name in names:
                torch.manual_seed(seed)
                if name in AUDIO_ENCODERS:
                    spec = AUDIO_ENCODERS[name]
                    torch.save(build_audio(spec).state_dict(), out / spec.filename)
                else:
                    face = FACE_ENCODERS[name]
                    assert face.filename is not None, name
                    torch.save(build_face(face).state_dict(), out / face.filename)
            made[key] = out
        return made[key]

    return make

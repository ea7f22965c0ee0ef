"""ffmpeg discovery: PATH first, else the imageio-ffmpeg binary; bad override -> AverError."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aver.errors import AverError
from aver.media import ffmpeg as ffmpeg_mod


@pytest.fixture(autouse=True)
def _fresh_cache():
    ffmpeg_mod.ffmpeg_exe.cache_clear()
    yield
    ffmpeg_mod.ffmpeg_exe.cache_clear()


def test_falls_back_to_imageio_binary_without_system_ffmpeg(monkeypatch, tmp_path):
    import imageio_ffmpeg

    monkeypatch.delenv("AVER_FFMPEG", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty dir: no ffmpeg on PATH
    exe = ffmpeg_mod.ffmpeg_exe()
    assert exe == imageio_ffmpeg.get_ffmpeg_exe()
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ffmpeg version")


def test_prefers_ffmpeg_on_path(monkeypatch, tmp_path):
    monkeypatch.delenv("AVER_FFMPEG", raising=False)
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert Path(ffmpeg_mod.ffmpeg_exe()) == fake


def test_bad_override_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AVER_FFMPEG", str(tmp_path / "nope"))
    with pytest.raises(AverError, match="AVER_FFMPEG"):
        ffmpeg_mod.ffmpeg_exe()

"""Where encoder weights come from: a configured file or directory, torch's cache, a verified
one-time download (loopback HTTP), and the errors that say where to put the file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from aver.config import CacheConfig
from aver.encoders.weights import resolve_encoder_weights
from aver.errors import ConfigError, DataError, DownloadError
from aver.io.weights import OFFLINE_ENV
from tests.support.http_server import FileServer

NO_RETRY = {"retries": 0, "backoff_s": 0.0, "progress": False}


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty $TORCH_HOME: torch's caches are empty, downloads land there."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("TORCH_HUB", raising=False)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    return home


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_for_the_one_pretrained_encoder(encoder_weights_file, torch_home):
    path = encoder_weights_file("resnet18")
    got = resolve_encoder_weights("resnet18", CacheConfig(face_encoder="resnet18",
                                                          encoder_weights=str(path)))  # fmt: skip
    assert (got.path, got.sha256, got.source) == (path, _sha(path), "local")


def test_a_directory_holds_each_encoder_under_its_library_name(encoder_weights_dir, torch_home):
    folder = encoder_weights_dir("wavlm_base", "resnet18")
    cfg = CacheConfig(audio_encoder="wavlm_base", face_encoder="resnet18",
                      encoder_weights=str(folder))  # fmt: skip
    assert resolve_encoder_weights("wavlm_base", cfg).path == folder / "wavlm_base.pth"
    assert resolve_encoder_weights("resnet18", cfg).path == folder / "resnet18-f37072fd.pth"


def test_one_file_for_two_encoders_is_ambiguous(encoder_weights_file, torch_home):
    cfg = CacheConfig(audio_encoder="wavlm_base", face_encoder="resnet18",
                      encoder_weights=str(encoder_weights_file("resnet18")))  # fmt: skip
    with pytest.raises(ConfigError, match="ambiguous") as err:
        resolve_encoder_weights("wavlm_base", cfg)
    assert "wavlm_base.pth" in str(err.value) and "directory" in str(err.value)


def test_torchscript_file_leaves_the_audio_encoder_to_the_caches(encoder_weights_file, torch_home):
    cached = torch_home / "hub" / "checkpoints" / "hubert_fairseq_base_ls960.pth"
    cached.parent.mkdir(parents=True)
    shutil.copy(encoder_weights_file("resnet18"), cached)  # any bytes: not loaded here
    script = encoder_weights_file("torchscript")
    cfg = CacheConfig(audio_encoder="hubert_base", face_encoder="torchscript",
                      encoder_weights=str(script))  # fmt: skip
    assert resolve_encoder_weights("torchscript", cfg).path == script
    assert resolve_encoder_weights("hubert_base", cfg).path == cached


def test_given_sha256_is_checked_for_local_files(encoder_weights_file, torch_home):
    path = encoder_weights_file("resnet18")
    cfg = CacheConfig(face_encoder="resnet18", encoder_weights=str(path),
                      encoder_sha256={"resnet18": "ab" * 32})  # fmt: skip
    with pytest.raises(DataError, match=r"resnet18-f37072fd\.pth.*sha256 is .*expected abab"):
        resolve_encoder_weights("resnet18", cfg)
    ok = cfg.model_copy(update={"encoder_sha256": {"resnet18": _sha(path)}})
    assert resolve_encoder_weights("resnet18", ok).sha256 == _sha(path)


def test_missing_configured_path_is_named(tmp_path, torch_home):
    cfg = CacheConfig(face_encoder="resnet18", encoder_weights=str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match=r"nope\.pth.*no such file"):
        resolve_encoder_weights("resnet18", cfg)


def test_the_libraries_caches_are_used_without_a_request(encoder_weights_file, torch_home):
    hub = torch_home / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(encoder_weights_file("resnet18"), hub / "resnet18-f37072fd.pth")
    facenet = torch_home / "checkpoints"  # facenet-pytorch's own cache folder
    facenet.mkdir()
    shutil.copy(encoder_weights_file("facenet_casia"), facenet / "20180408-102900-casia-webface.pt")
    cfg = CacheConfig(face_encoder="resnet18", encoder_urls={"resnet18": "http://127.0.0.1:9/x"})
    got = resolve_encoder_weights("resnet18", cfg, NO_RETRY)
    assert got.path == hub / "resnet18-f37072fd.pth" and got.source == "cache"
    got = resolve_encoder_weights("facenet_casia", CacheConfig(face_encoder="facenet_casia"))
    assert got.path == facenet / "20180408-102900-casia-webface.pt"


def test_loopback_download_is_verified_cached_and_not_fetched_again(
    encoder_weights_file, torch_home
):
    data = encoder_weights_file("wavlm_base").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    with FileServer({"/w/wavlm.pth": data}) as srv:
        cfg = CacheConfig(audio_encoder="wavlm_base",
                          encoder_urls={"wavlm_base": srv.url("/w/wavlm.pth")},
                          encoder_sha256={"wavlm_base": sha})  # fmt: skip
        got = resolve_encoder_weights("wavlm_base", cfg, NO_RETRY)
        dest = torch_home / "hub" / "checkpoints" / "wavlm_base.pth"
        assert (got.path, got.sha256, got.source) == (dest, sha, "download")
        assert dest.read_bytes() == data
        again = resolve_encoder_weights("wavlm_base", cfg, NO_RETRY)
        assert again.path == dest and again.source == "cache"
        assert len(srv.requests_for("/w/wavlm.pth")) == 1


def test_download_with_the_wrong_sha256_is_refused(encoder_weights_file, torch_home):
    data = encoder_weights_file("resnet18").read_bytes()
    with FileServer({"/r18.pth": data}) as srv:
        cfg = CacheConfig(face_encoder="resnet18", encoder_urls={"resnet18": srv.url("/r18.pth")},
                          encoder_sha256={"resnet18": "0" * 64})  # fmt: skip
        with pytest.raises(DownloadError, match="does not verify") as err:
            resolve_encoder_weights("resnet18", cfg, NO_RETRY)
    assert "resnet18-f37072fd.pth" in str(err.value)
    assert not (torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_download_without_sha256_is_pinned_on_first_use(encoder_weights_file, torch_home):
    data = encoder_weights_file("resnet18").read_bytes()
    with FileServer({"/r18.pth": data}) as srv:
        cfg = CacheConfig(face_encoder="resnet18", encoder_urls={"resnet18": srv.url("/r18.pth")})
        got = resolve_encoder_weights("resnet18", cfg, NO_RETRY)
        assert got.sha256 == hashlib.sha256(data).hexdigest()
        assert (got.path.parent / "downloads.lock.json").is_file()
        srv.add("/r18.pth", data[::-1])  # changed upstream; the cached copy is gone
        got.path.unlink()
        with pytest.raises(DownloadError, match="its pin in"):
            resolve_encoder_weights("resnet18", cfg, NO_RETRY)


def test_offline_error_names_file_url_and_where_to_put_it(torch_home, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    cfg = CacheConfig(audio_encoder="wavlm_base_plus")
    with pytest.raises(DownloadError) as err:
        resolve_encoder_weights("wavlm_base_plus", cfg)
    msg = str(err.value)
    assert "wavlm_base_plus.pth" in msg
    assert "https://download.pytorch.org/torchaudio/models/wavlm_base_plus.pth" in msg
    assert str(torch_home / "hub" / "checkpoints" / "wavlm_base_plus.pth") in msg
    assert "cache.encoder_weights" in msg and "AVER_OFFLINE" in msg
    assert not (torch_home / "hub" / "checkpoints").exists()

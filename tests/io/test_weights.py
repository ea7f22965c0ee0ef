"""aver.io.weights: checked local files, fetch once, and offline mode."""

from __future__ import annotations

import hashlib

import pytest

from aver.errors import DataError, DownloadError
from aver.io.weights import OFFLINE_ENV, checked_file, fetch_once, offline


@pytest.mark.parametrize(("value", "expected"), [("", False), ("0", False), ("1", True),
                                                 ("yes", True), ("false", False)])  # fmt: skip
def test_offline_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(OFFLINE_ENV, value)
    assert offline() is expected


def test_checked_file_returns_or_refuses_its_sha256(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    sha = hashlib.sha256(b"weights").hexdigest()
    assert checked_file(path, sha256=None, what="w", fix="f").sha256 == sha
    assert checked_file(path, sha256=sha.upper(), what="w", fix="f").source == "local"
    with pytest.raises(DataError, match=r"w\.pth: w: sha256 is"):
        checked_file(path, sha256="0" * 64, what="w", fix="put it there")


def test_offline_uses_a_cached_file_and_never_requests(http_server, tmp_path, monkeypatch):
    http_server.add("/w.pth", b"weights")
    url = http_server.url("/w.pth")
    dest = tmp_path / "cache" / "w.pth"
    fetch_once(url, dest, sha256=None, what="w", fix="f", retries=0, progress=False)  # pinned
    monkeypatch.setenv(OFFLINE_ENV, "1")
    got = fetch_once(url, dest, sha256=None, what="w", fix="f")
    assert got.source == "cache" and got.sha256 == hashlib.sha256(b"weights").hexdigest()
    assert len(http_server.requests_for("/w.pth")) == 1
    dest.write_bytes(b"changed")  # no longer matches its pin
    with pytest.raises(DataError, match="sha256 is"):
        fetch_once(url, dest, sha256=None, what="w", fix="f")
    dest.unlink()
    with pytest.raises(DownloadError, match=r"AVER_OFFLINE=1 forbids downloading it from"):
        fetch_once(url, dest, sha256=None, what="w", fix="copy it there")

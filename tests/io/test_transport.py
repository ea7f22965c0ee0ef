"""aver.io.http transport rules: no https->http redirects, TLS failures, trickling transfers."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from aver.errors import DownloadError
from aver.io.http import download, fetch_bytes, part_path
from tests.support.http_server import FileServer

FAST = {"backoff_s": 0.01, "progress": False}


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    pytest.importorskip("cryptography")
    from tests.support.tls import self_signed_cert

    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(cert):
    with FileServer(tls=cert) as srv:
        yield srv


@pytest.fixture
def trust(cert, monkeypatch):
    """Trust the test certificate the way a user would: REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def test_https_with_a_trusted_certificate_and_https_redirects_work(https_server, trust, tmp_path):
    data = payload(50_000)
    https_server.add("/f.bin", data)
    url = https_server.redirect("/old/f.bin", https_server.url("/f.bin"))
    assert download(url, tmp_path / "f.bin", **FAST).read_bytes() == data


def test_https_to_http_redirect_is_refused(https_server, http_server, trust, tmp_path):
    target = http_server.add("/f.bin", b"unencrypted")
    url = https_server.redirect("/f.bin", target)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as info:
        download(url, dest, retries=3, **FAST)
    msg = str(info.value)
    assert url in msg and target in msg and "plain HTTP" in msg
    assert http_server.requests == [] and len(https_server.requests) == 1
    assert os.listdir(tmp_path) == []
    with pytest.raises(DownloadError, match="refusing to leave HTTPS"):
        fetch_bytes(url, **{k: v for k, v in FAST.items() if k != "progress"})
    assert http_server.requests == []


@pytest.mark.parametrize("case", ["untrusted-certificate", "https-to-plain-server"])
def test_tls_failure_is_not_retried_and_named(case, https_server, http_server, tmp_path):
    if case == "untrusted-certificate":
        server, url = https_server, https_server.add("/f.bin", b"x")
    else:
        http_server.add("/f.bin", b"x")
        server, url = http_server, http_server.url("/f.bin").replace("http://", "https://")
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.bin", retries=3, **FAST)
    msg = str(info.value)
    assert "TLS/certificate problem talking to 127.0.0.1" in msg
    assert "REQUESTS_CA_BUNDLE" in msg and "system clock" in msg
    assert server.connections == 1  # no retry
    with pytest.raises(DownloadError, match="TLS/certificate problem"):
        fetch_bytes(url, retries=3, backoff_s=0.01)
    assert server.connections == 2


def test_trickle_is_ended_by_the_minimum_rate(http_server, tmp_path):
    data = payload(100_000)
    url = http_server.add("/f.bin", data)
    http_server.trickle("/f.bin", chunk=50, interval=0.05)  # ~1 kB/s: 100 s for the file
    dest = tmp_path / "f.bin"
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(url, dest, min_rate_bytes_s=20_000, rate_window_s=0.5, **FAST)
    assert time.monotonic() - start < 3
    msg = str(info.value)
    assert url in msg and "too slow" in msg and "bytes/s" in msg
    assert "download.min_rate_bytes_s = 20000" in msg and "download.rate_window_s" in msg
    assert len(http_server.requests) == 1  # ended, not retried
    kept = part_path(dest).read_bytes()  # a rerun resumes from here
    assert 0 < len(kept) < len(data) and data.startswith(kept)


def test_deadline_ends_a_steady_trickle_and_a_stall(http_server, tmp_path):
    data = payload(100_000)
    url = http_server.add("/f.bin", data)
    http_server.trickle("/f.bin", chunk=500, interval=0.05)  # ~10 kB/s, over the minimum
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"download\.deadline_s = 1 s") as info:
        download(url, tmp_path / "a.bin", min_rate_bytes_s=1000, deadline_s=1.0, **FAST)
    assert time.monotonic() - start < 3 and url in str(info.value)

    # A stall shorter than timeout_s is still cut at the deadline (the read waits no longer).
    http_server.stall("/f.bin", after=1000, seconds=5)
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"download\.deadline_s"):
        download(url, tmp_path / "b.bin", timeout_s=60, deadline_s=1.0, **FAST)
    assert time.monotonic() - start < 3


def test_rate_and_deadline_let_a_normal_transfer_through(http_server, tmp_path):
    data = payload(2_000_000)
    url = http_server.add("/f.bin", data)
    dest = download(
        url, tmp_path / "f.bin", min_rate_bytes_s=1000, rate_window_s=0.01, deadline_s=30, **FAST
    )
    assert dest.read_bytes() == data

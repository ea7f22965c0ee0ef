"""aver.io.http against a real loopback HTTP server with injected faults."""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest

from aver.errors import DownloadError
from aver.io.checksums import file_digests, md5sum, sha256sum
from aver.io.http import download, fetch_bytes, fetch_json, part_path, stamp_path

FAST = {"backoff_s": 0.01, "progress": False}


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_checksums_stream_match_hashlib(tmp_path):
    data = payload(3 * (1 << 20) + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256sum(path) == sha(data)
    assert md5sum(path) == hashlib.md5(data).hexdigest()
    assert file_digests(path, ["md5"], chunk_bytes=1000) == {"md5": hashlib.md5(data).hexdigest()}


def test_500_twice_then_success(http_server, tmp_path):
    data = payload(200_000)
    url = http_server.add("/f.bin", data)
    http_server.fail("/f.bin", times=2, status=500)
    dest = download(url, tmp_path / "f.bin", size=len(data), sha256=sha(data), **FAST)
    assert dest.read_bytes() == data
    assert len(http_server.requests_for("/f.bin")) == 3
    assert not part_path(dest).exists()
    stamp = json.loads(stamp_path(dest).read_text())
    assert stamp["sha256"] == sha(data) and stamp["size"] == len(data)


@pytest.mark.parametrize("cuts", [[123_457], [1, 70_000, 199_999]])
def test_cut_mid_body_resumes_from_the_byte_reached(http_server, tmp_path, cuts):
    data = payload(200_000, seed=1)
    url = http_server.add("/f.bin", data)
    # Each cut applies to the next response; `after` counts that response's body bytes.
    reached = 0
    for cut in cuts:
        http_server.cut("/f.bin", after=cut - reached)
        reached = cut
    dest = download(url, tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest(), **FAST)
    assert http_server.ranges("/f.bin") == [None] + [f"bytes={c}-" for c in cuts]
    assert dest.read_bytes() == data


def test_leftover_part_from_an_earlier_run_is_resumed(http_server, tmp_path):
    data = payload(100_000, seed=2)
    url = http_server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(data[:40_000])
    download(url, dest, size=len(data), sha256=sha(data), **FAST)
    assert http_server.ranges("/f.bin") == ["bytes=40000-"]
    assert dest.read_bytes() == data


def test_read_timeout_mid_body_resumes(http_server, tmp_path):
    data = payload(50_000, seed=3)
    url = http_server.add("/f.bin", data)
    http_server.stall("/f.bin", after=1000, seconds=2.0)
    dest = download(url, tmp_path / "f.bin", sha256=sha(data), timeout_s=0.3, **FAST)
    assert http_server.ranges("/f.bin") == [None, "bytes=1000-"]
    assert dest.read_bytes() == data


def test_wrong_bytes_raise_and_leave_no_file(http_server, tmp_path):
    data = payload(30_000, seed=4)
    url = http_server.add("/f.bin", data)
    http_server.corrupt("/f.bin")
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as info:
        download(url, dest, size=len(data), sha256=sha(data), **FAST)
    msg = str(info.value)
    wrong = bytes(b ^ 0xFF for b in data)
    assert url in msg and str(dest) in msg
    assert sha(data) in msg and sha(wrong) in msg and "Fix:" in msg
    assert sorted(os.listdir(tmp_path)) == []  # neither the final name nor a .part
    assert len(http_server.requests_for("/f.bin")) == 1  # a fresh mismatch is not retried


def test_size_announced_by_server_differs(http_server, tmp_path):
    data = payload(1000)
    url = http_server.add("/f.bin", data)
    with pytest.raises(DownloadError, match="has 1000 bytes, expected 999"):
        download(url, tmp_path / "f.bin", size=999, **FAST)
    assert os.listdir(tmp_path) == []


def test_present_and_verified_makes_no_request(http_server, tmp_path):
    data = payload(20_000, seed=5)
    url = http_server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    download(url, dest, size=len(data), sha256=sha(data), **FAST)
    n = len(http_server.requests)
    download(url, dest, size=len(data), sha256=sha(data), **FAST)  # stamp is fresh
    stamp_path(dest).unlink()
    download(url, dest, size=len(data), sha256=sha(data), **FAST)  # rehash, no request
    assert stamp_path(dest).exists()
    # A correct file put there by hand (no stamp) is accepted too.
    other = tmp_path / "manual.bin"
    other.write_bytes(data)
    download(url, other, md5=hashlib.md5(data).hexdigest(), **FAST)
    assert len(http_server.requests) == n == 1


def test_changed_file_under_final_name_is_fetched_again(http_server, tmp_path):
    data = payload(20_000, seed=6)
    url = http_server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    download(url, dest, sha256=sha(data), **FAST)
    dest.write_bytes(b"x" * len(data))  # same size, new mtime: the stamp no longer applies
    download(url, dest, sha256=sha(data), **FAST)
    assert dest.read_bytes() == data
    assert len(http_server.requests_for("/f.bin")) == 2


def test_200_answer_to_a_range_request_restarts_from_zero(http_server, tmp_path):
    data = payload(60_000, seed=7)
    url = http_server.add("/f.bin", data)
    http_server.no_range = True
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(b"\0" * 10_000)  # would corrupt the file if appended to
    download(url, dest, sha256=sha(data), **FAST)
    assert http_server.ranges("/f.bin") == ["bytes=10000-"]
    assert dest.read_bytes() == data


def test_416_on_a_complete_part_verifies_it(http_server, tmp_path):
    data = payload(5000, seed=8)
    url = http_server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(data)  # complete, but size unknown to the caller
    download(url, dest, sha256=sha(data), **FAST)
    assert http_server.ranges("/f.bin") == ["bytes=5000-"]
    assert dest.read_bytes() == data and not part_path(dest).exists()


def test_stale_part_that_fails_verification_restarts_once(http_server, tmp_path):
    data = payload(8000, seed=9)
    url = http_server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(b"old version")  # prefix of a different file
    download(url, dest, sha256=sha(data), **FAST)
    assert http_server.ranges("/f.bin") == ["bytes=11-", None]
    assert dest.read_bytes() == data


def test_404_fails_at_once_and_retries_are_bounded(http_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(http_server.url("/missing"), tmp_path / "m.bin", **FAST)
    assert len(http_server.requests) == 1

    url = http_server.add("/f.bin", b"abc")
    http_server.fail("/f.bin", times=None, status=503)
    with pytest.raises(DownloadError, match=r"giving up .* after 3 failed attempts"):
        download(url, tmp_path / "f.bin", retries=2, **FAST)
    assert len(http_server.requests_for("/f.bin")) == 3
    assert not (tmp_path / "f.bin").exists()


def test_unreachable_host_gives_up_naming_the_url(tmp_path):
    from tests.support.http_server import FileServer

    srv = FileServer()
    url = srv.url("/f.bin")
    srv.stop()  # the port is now closed
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.bin", retries=1, **FAST)
    assert url in str(info.value) and "Fix:" in str(info.value)


def test_fetch_json_and_bytes_retry(http_server):
    url = http_server.add_json("/api/records/1", {"files": [{"key": "a.zip"}]})
    http_server.fail("/api/records/1", times=1, status=502)
    http_server.cut("/api/records/1", after=5)
    assert fetch_json(url, backoff_s=0.01) == {"files": [{"key": "a.zip"}]}
    assert len(http_server.requests_for("/api/records/1")) == 3

    raw = http_server.add("/raw.txt", b"hello")
    assert fetch_bytes(raw, backoff_s=0.01) == b"hello"
    with pytest.raises(DownloadError, match="did not return JSON"):
        fetch_json(raw, backoff_s=0.01)

"""Trust on first use: downloads without a known checksum are pinned in a lock file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random

import pytest

from aver.errors import DataError, DownloadError
from aver.io.http import download, part_path
from aver.io.lockfile import LOCK_NAME, DownloadLock

FAST = {"backoff_s": 0.01, "progress": False}


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entries(lock: DownloadLock) -> dict:
    return json.loads(lock.path.read_text())["files"]


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    return root


def test_first_download_is_pinned_and_logged_then_reruns_verify(http_server, raw, caplog):
    data = payload(30_000)
    url = http_server.add("/mosei/labels.csv", data)
    dest = raw / "mosei" / "labels.csv"
    lock = DownloadLock(raw / LOCK_NAME)
    with caplog.at_level(logging.INFO, logger="aver.io.lockfile"):
        download(url, dest, lock=lock, **FAST)
        lock.log_new()
    entry = entries(lock)[url]
    assert entry["sha256"] == sha(data) and entry["size"] == len(data)
    assert entry["file"] == "mosei/labels.csv"
    assert entry["etag"] == f'"{sha(data)[:16]}"' and entry["last_modified"]
    pinned = [r for r in caplog.records if "pinned on first use" in r.getMessage()]
    assert len(pinned) == 1 and "mosei/labels.csv" in pinned[0].getMessage()

    # Later runs: the file verifies against the pin without a request; fetched again, the
    # same content passes too; the lock file is left as it was.
    before = lock.path.read_bytes()
    download(url, dest, lock=DownloadLock(lock.path), **FAST)
    assert len(http_server.requests) == 1
    dest.unlink()
    download(url, dest, lock=DownloadLock(lock.path), **FAST)
    assert dest.read_bytes() == data and lock.path.read_bytes() == before


@pytest.mark.parametrize("new_size", [30_000, 31_000], ids=["same-size", "other-size"])
def test_file_changed_on_the_server_is_refused_and_nothing_overwritten(http_server, raw, new_size):
    data, changed = payload(30_000), payload(new_size, seed=1)
    url = http_server.add("/labels.csv", data)
    dest = raw / "labels.csv"
    download(url, dest, lock=DownloadLock(raw / LOCK_NAME), **FAST)
    before = (raw / LOCK_NAME).read_bytes()
    dest.unlink()  # e.g. a fresh clone of the lock file, or a file deleted by hand
    http_server.add("/labels.csv", changed)
    with pytest.raises(DownloadError) as info:
        download(url, dest, lock=DownloadLock(raw / LOCK_NAME), **FAST)
    msg = str(info.value)
    assert url in msg and str(dest) in msg and str(raw / LOCK_NAME) in msg
    if new_size == len(data):
        assert sha(data) in msg and sha(changed) in msg
    else:
        assert f"has {new_size} bytes, expected {len(data)}" in msg
    assert "delete the entry" in msg
    assert not dest.exists() and not part_path(dest).exists()
    assert (raw / LOCK_NAME).read_bytes() == before


def test_file_changed_on_disk_is_refused_not_replaced(http_server, raw):
    data = payload(5000)
    url = http_server.add("/f.csv", data)
    dest = raw / "f.csv"
    lock = DownloadLock(raw / LOCK_NAME)
    download(url, dest, lock=lock, **FAST)
    dest.write_bytes(b"edited by hand")
    with pytest.raises(DownloadError) as info:
        download(url, dest, lock=lock, **FAST)
    msg = str(info.value)
    assert url in msg and str(dest) in msg and "changed on disk" in msg
    assert f"expected {len(data)} bytes, got 14" in msg and "delete the entry" in msg
    assert dest.read_bytes() == b"edited by hand" and len(http_server.requests) == 1

    dest.write_bytes(bytes(b ^ 1 for b in data))  # same size: the sha256 tells
    with pytest.raises(DownloadError, match=f"sha256: expected {sha(data)}"):
        download(url, dest, lock=lock, **FAST)

    dest.unlink()  # the fix for an accidental change: fetch the pinned version again
    download(url, dest, lock=lock, **FAST)
    assert dest.read_bytes() == data


def test_file_present_without_an_entry_is_pinned_as_it_is(http_server, raw):
    url = http_server.add("/f.csv", b"served")
    dest = raw / "f.csv"
    dest.write_bytes(b"kept locally")  # e.g. downloaded before pinning existed
    lock = DownloadLock(raw / LOCK_NAME)
    download(url, dest, lock=lock, **FAST)
    assert entries(lock)[url]["sha256"] == sha(b"kept locally")
    assert lock.new == ["f.csv"] and http_server.requests == []


def test_known_checksum_is_not_pinned(http_server, raw):
    data = payload(1000)
    url = http_server.add("/f.bin", data)
    download(url, raw / "f.bin", sha256=sha(data), lock=DownloadLock(raw / LOCK_NAME), **FAST)
    assert not (raw / LOCK_NAME).exists()


def test_html_page_instead_of_the_file_is_refused(http_server, raw):
    url = http_server.add("/labels.csv", b"<html>Sign in to Wi-Fi</html>", "text/html")
    dest = raw / "labels.csv"
    with pytest.raises(DownloadError, match="answered an HTML page") as info:
        download(url, dest, lock=DownloadLock(raw / LOCK_NAME), **FAST)
    assert url in str(info.value) and "captive-portal" in str(info.value)
    assert os.listdir(raw) == []


def test_credentials_are_redacted_in_the_lock_and_messages(http_server, raw):
    http_server.add("/f.csv", b"a,b\n")
    host = http_server.base_url.removeprefix("http://")
    url = f"http://alice:s3cret@{host}/f.csv?token=t0ken&part=1"
    lock = DownloadLock(raw / LOCK_NAME)
    download(url, raw / "f.csv", lock=lock, **FAST)
    text = lock.path.read_text()
    assert f"http://***:***@{host}/f.csv?token=***&part=1" in entries(lock)
    assert "s3cret" not in text and "t0ken" not in text and "alice" not in text

    http_server.add("/f.csv", b"a,b,c\n")
    (raw / "f.csv").unlink()
    with pytest.raises(DownloadError) as info:
        download(url, raw / "f.csv", lock=DownloadLock(lock.path), **FAST)
    assert "s3cret" not in str(info.value) and "t0ken" not in str(info.value)


def test_unreadable_lock_file_names_it(raw):
    (raw / LOCK_NAME).write_text("{not json")
    with pytest.raises(DataError, match=LOCK_NAME) as info:
        DownloadLock(raw / LOCK_NAME)
    assert "delete it" in str(info.value)

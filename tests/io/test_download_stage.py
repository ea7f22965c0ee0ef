"""aver.datasets.download.run end to end on a small dataset served from a loopback server."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from aver.config import Params, parse_params
from aver.datasets.base import DatasetSpec, Sample, Source
from aver.datasets.download import run
from aver.errors import ConfigError, DataError, DownloadError
from tests.support.http_server import FileServer

CLASSES = ("neutral", "happy", "sad")
# file name -> (label, speaker, intensity); the zip holds "<speaker>/<name>.wav"
CLIPS = {
    "s02_happy_1": ("happy", "s02", "strong"),
    "s01_neutral_1": ("neutral", "s01", "normal"),
    "s01_sad_2": ("sad", "s01", "normal"),
    "s02_neutral_3": ("neutral", "s02", "strong"),
}


def clip_bytes(name: str) -> bytes:
    return (name.encode() + b"\0") * 500


def build_zip(clips: dict[str, tuple[str, str, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (_, speaker, _) in clips.items():
            zf.writestr(f"media/{speaker}/{name}.wav", clip_bytes(name))
    return buf.getvalue()


class LoopbackDataset(DatasetSpec):
    """A real (tiny) dataset: one zip of clips + one loose labels file, served over HTTP."""

    name = "loopback"
    classes: ClassVar[tuple[str, ...]] = CLASSES
    n_folds = 2

    def __init__(self, server: FileServer, archive: bytes, labels: bytes):
        self.server = server
        self.archive, self.labels = archive, labels

    def sources(self, params: Params) -> list[Source]:
        return [
            Source(
                url=self.server.url("/records/1/files/clips.zip/content"),
                dest="archives/clips.zip",
                size=len(self.archive),
                md5=hashlib.md5(self.archive).hexdigest(),
                extract_to="clips",
            ),
            Source(
                url=self.server.url("/records/1/files/labels.json/content"),
                dest="labels.json",
                sha256=hashlib.sha256(self.labels).hexdigest(),
            ),
        ]

    def samples(self, root: Path, params: Params) -> list[Sample]:
        labels = json.loads((root / "labels.json").read_text())
        out = []
        for wav in sorted((root / "clips" / "media").glob("*/*.wav")):
            label, intensity = labels[wav.stem]
            meta = {"intensity": intensity, "bytes": wav.stat().st_size}
            out.append(Sample(wav.stem, str(wav.relative_to(root)), label, wav.parent.name, meta))
        return out


@pytest.fixture
def served(http_server):
    archive = build_zip(CLIPS)
    labels = json.dumps({k: [v[0], v[2]] for k, v in CLIPS.items()}).encode()
    http_server.add("/records/1/files/clips.zip/content", archive)
    http_server.add("/records/1/files/labels.json/content", labels)
    return http_server, LoopbackDataset(http_server, archive, labels)


def params_for(root: Path) -> Params:
    return parse_params({"data": {"root": str(root)}, "download": {"backoff_s": 0.0, "workers": 2}})


def test_run_writes_index_and_dataset_json_and_reruns_without_requests(served, tmp_path):
    server, spec = served
    server.cut("/records/1/files/clips.zip/content", after=700)  # resumed transparently
    root = tmp_path / "raw"
    params = params_for(root)
    run(params, spec)

    index = pd.read_csv(root / "index.csv", dtype=str)
    assert list(index.columns) == ["clip_id", "path", "label", "speaker", "intensity", "bytes"]
    assert list(index["clip_id"]) == sorted(CLIPS)
    for row in index.itertuples():
        label, speaker, intensity = CLIPS[row.clip_id]
        assert (row.label, row.speaker, row.intensity) == (label, speaker, intensity)
        assert row.path == f"clips/media/{speaker}/{row.clip_id}.wav"
        assert (root / row.path).read_bytes() == clip_bytes(row.clip_id)
        assert int(row.bytes) == len(clip_bytes(row.clip_id))
    meta = json.loads((root / "dataset.json").read_text())
    assert meta == {
        "name": "loopback", "classes": list(CLASSES), "n_folds": 2, "n_clips": 4,
        "modalities": ["audio", "video"],
    }  # fmt: skip
    assert server.ranges("/records/1/files/clips.zip/content") == [None, "bytes=700-"]
    assert not list(root.rglob("*.part"))

    n_requests = len(server.requests)
    index_before = (root / "index.csv").read_bytes()
    run(params, spec)
    assert len(server.requests) == n_requests  # everything verified locally
    assert (root / "index.csv").read_bytes() == index_before


def test_run_without_samples_names_the_root(http_server, tmp_path):
    archive = build_zip({})
    labels = b"{}"
    http_server.add("/records/1/files/clips.zip/content", archive)
    http_server.add("/records/1/files/labels.json/content", labels)
    root = tmp_path / "raw"
    with pytest.raises(DataError) as info:
        run(params_for(root), LoopbackDataset(http_server, archive, labels))
    assert str(root) in str(info.value) and "no loopback clips" in str(info.value)
    assert not (root / "index.csv").exists()


def test_one_failed_source_is_reported_and_the_others_are_kept(served, tmp_path):
    server, spec = served
    server.fail("/records/1/files/labels.json/content", times=None, status=503)
    root = tmp_path / "raw"
    params = parse_params(
        {"data": {"root": str(root)}, "download": {"backoff_s": 0.0, "retries": 1}}
    )
    with pytest.raises(DownloadError) as info:
        run(params, spec)
    assert "labels.json" in str(info.value) and "503" in str(info.value)
    assert (root / "archives" / "clips.zip").read_bytes() == spec.archive
    assert (root / "clips" / "media" / "s01" / "s01_sad_2.wav").is_file()
    assert not (root / "index.csv").exists()

    server.clear_faults()
    run(params, spec)
    assert len(server.requests_for("/records/1/files/clips.zip/content")) == 1
    assert json.loads((root / "dataset.json").read_text())["n_clips"] == 4


def test_source_paths_must_stay_inside_the_root(http_server, tmp_path):
    class Escaping(LoopbackDataset):
        def sources(self, params: Params) -> list[Source]:
            return [Source(url=self.server.url("/x"), dest="../outside.bin")]

    with pytest.raises(DataError, match="not a relative path inside the data root"):
        run(params_for(tmp_path / "raw"), Escaping(http_server, b"", b""))
    assert not (tmp_path / "outside.bin").exists() and http_server.requests == []


class Unchecked(LoopbackDataset):
    """Like MOSEI or the CREMA-D tables: the labels file has no published checksum."""

    def sources(self, params: Params) -> list[Source]:
        archive, labels = super().sources(params)
        return [archive, Source(url=labels.url, dest=labels.dest)]


def test_files_without_checksum_are_pinned_and_a_server_change_is_refused(served, tmp_path, caplog):
    server, spec = served
    spec = Unchecked(server, spec.archive, spec.labels)
    root = tmp_path / "raw"
    url = server.url("/records/1/files/labels.json/content")
    with caplog.at_level(logging.INFO, logger="aver"):
        run(params_for(root), spec)
        run(params_for(root), spec)  # nothing new to pin
    pins = json.loads((root / "downloads.lock.json").read_text())["files"]
    assert list(pins) == [url] and pins[url]["file"] == "labels.json"
    assert pins[url]["sha256"] == hashlib.sha256(spec.labels).hexdigest()
    lines = [r.getMessage() for r in caplog.records if "pinned on first use" in r.getMessage()]
    assert len(lines) == 1 and "labels.json" in lines[0] and "clips.zip" not in lines[0]

    server.add("/records/1/files/labels.json/content", spec.labels.replace(b"sad", b"mad"))
    (root / "labels.json").unlink()
    with pytest.raises(DownloadError) as info:
        run(params_for(root), spec)
    assert url in str(info.value) and "downloads.lock.json" in str(info.value)
    assert not (root / "labels.json").exists()


def test_archive_limits_come_from_params(served, tmp_path):
    _, spec = served
    root = tmp_path / "raw"
    params = parse_params(
        {"data": {"root": str(root)}, "download": {"backoff_s": 0.0, "max_archive_bytes": 1000}}
    )
    with pytest.raises(DataError, match=r"download\.max_archive_bytes = 1,000"):
        run(params, spec)
    assert list((root / "clips").iterdir()) == []
    with pytest.raises(ConfigError, match="max_compression_ratio"):
        parse_params({"download": {"max_compression_ratio": 0.5}})

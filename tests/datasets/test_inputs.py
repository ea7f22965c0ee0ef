"""The download stage records a folder dataset's external inputs: links DVC follows and a
content manifest (name, bytes, sha256) in data.root that changes when a video's content does."""

from __future__ import annotations

import hashlib

import pandas as pd

from aver.datasets.download import run
from aver.datasets.inputs import MANIFEST, links_dir
from tests.datasets.conftest import make_params, touch


def _folder(tmp_path):
    videos = tmp_path / "videos"
    rows = [("happy", s) for s in ("ann", "bob", "cat")] + [
        ("sad", s) for s in ("ann", "bob", "cat")
    ]
    for i in range(len(rows)):
        touch(videos, f"p{i}.mp4", data=f"video {i}".encode())
    csv = videos / "list.csv"
    lines = [f"p{i}.mp4,{label},{spk}" for i, (label, spk) in enumerate(rows)]
    csv.write_text("path,label,speaker\n" + "\n".join(lines) + "\n")
    root = tmp_path / "data" / "raw"
    params = make_params({"dataset": "folder", "root": str(root), "folder": {"csv": str(csv)}})
    return params, root, videos, csv


def test_folder_download_writes_links_and_a_content_manifest(tmp_path):
    params, root, _, csv = _folder(tmp_path)
    run(params)
    links = links_dir(root)
    assert links == tmp_path / "data" / "inputs" / "links"
    assert (links / "dataset.csv").resolve() == csv.resolve()
    assert sorted(p.name for p in (links / "media").iterdir()) == [f"p{i}.mp4" for i in range(6)]
    assert (links / "media" / "p2.mp4").read_bytes() == b"video 2"  # a link to the file
    table = pd.read_csv(root / MANIFEST)
    assert table.columns.tolist() == ["name", "bytes", "sha256"]
    assert table["name"].tolist() == ["dataset.csv", *(f"media/p{i}.mp4" for i in range(6))]
    row = table.set_index("name").loc["media/p2.mp4"]
    assert row["sha256"] == hashlib.sha256(b"video 2").hexdigest() and row["bytes"] == 7


def test_replaced_video_changes_the_manifest_and_nothing_else_does(tmp_path):
    params, root, videos, _ = _folder(tmp_path)
    run(params)
    first = (root / MANIFEST).read_bytes()
    index = (root / "index.csv").read_bytes()
    (videos / "p3.mp4").touch()  # same content
    run(params)
    assert (root / MANIFEST).read_bytes() == first
    (videos / "p3.mp4").write_bytes(b"another take")
    run(params)
    assert (root / MANIFEST).read_bytes() != first
    assert (root / "index.csv").read_bytes() == index  # the listing itself did not change


def test_a_dataset_with_media_in_data_root_records_no_external_inputs(tmp_path):
    params, root, _, _ = _folder(tmp_path)
    run(params)
    demo = make_params(
        {"dataset": "demo", "root": str(root), "demo": {"speakers": 3, "clips_per_class": 1}}
    )
    run(demo)
    assert not (root / MANIFEST).exists()
    assert not links_dir(root).exists()

"""RAVDESS: file-name parsing, sample listing, sources from a (loopback) Zenodo record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from aver.datasets.download import run
from aver.datasets.ravdess import (
    AUDIO_ARCHIVE,
    EMOTIONS,
    RavdessDataset,
    archive_name,
    parse_ravdess_name,
    record_files,
)
from aver.errors import DataError, DownloadError
from tests.datasets.conftest import make_params, touch, zip_bytes

FAST = {"retries": 0, "backoff_s": 0.0, "timeout_s": 5.0}


def test_parse_angry_strong_actor_12():
    info = parse_ravdess_name("01-01-05-02-01-01-12.mp4")
    assert info.as_dict() == {
        "modality": "full-AV",
        "vocal_channel": "speech",
        "emotion": "angry",
        "intensity": "strong",
        "statement": 1,
        "repetition": 1,
        "actor": 12,
        "sex": "female",
    }
    assert info["emotion"] == info.label == "angry"
    assert info.speaker == "12"
    assert dict(info)["actor"] == 12


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("02-01-06-01-02-02-01.mp4", "video-only speech fearful normal 2 2 1 male"),
        ("03-02-08-02-01-02-23.wav", "audio-only song surprised strong 1 2 23 male"),
        ("/x/Actor_24/01-01-02-01-02-01-24.mp4", "full-AV speech calm normal 2 1 24 female"),
        ("01-01-07-01-01-01-03", "full-AV speech disgust normal 1 1 3 male"),
    ],
)
def test_parse_real_names(name, expected):
    info = parse_ravdess_name(name)
    assert " ".join(str(v) for v in info.as_dict().values()) == expected


def test_emotion_codes_follow_the_code_order():
    assert EMOTIONS == (
        "neutral",
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    )
    for code, emotion in enumerate(EMOTIONS, start=1):
        assert parse_ravdess_name(f"01-01-{code:02d}-01-01-01-01.mp4").emotion == emotion


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("01-01-05-02-01-12.mp4", "not a RAVDESS file name"),
        ("01-01-09-01-01-01-01.mp4", "emotion code 09"),
        ("01-01-05-01-01-01-25.mp4", "actor code 25"),
        ("04-01-05-01-01-01-01.mp4", "modality code 04"),
        ("01-01-05-03-01-01-01.mp4", "intensity code 03"),
        ("01-01-05-01-01-00-01.mp4", "repetition code 00"),
        ("Video_Speech_Actor_01.zip", "not a RAVDESS file name"),
        ("1-1-5-2-1-1-12.mp4", "not a RAVDESS file name"),
    ],
)
def test_malformed_names_raise_data_error(name, why):
    with pytest.raises(DataError, match=why) as err:
        parse_ravdess_name(name)
    assert Path(name).name in str(err.value)
    assert "MM-VV-EE-II-SS-RR-AA" in str(err.value)


def _tree(root: Path) -> list[str]:
    """A RAVDESS-like tree; returns the clip ids that are samples (full-AV speech)."""
    good = [
        "Actor_01/01-01-01-01-01-01-01.mp4",
        "Actor_01/01-01-05-02-02-01-01.mp4",
        "Actor_02/01-01-08-01-01-02-02.mp4",
        "Actor_02/01-01-03-02-01-01-02.mp4",
    ]
    not_samples = [
        "Actor_01/02-01-01-01-01-01-01.mp4",  # video-only
        "Actor_02/02-01-08-01-01-02-02.mp4",  # video-only
        "Actor_01/01-02-05-01-01-01-01.mp4",  # song
        "Actor_01/03-01-05-01-01-01-01.wav",  # audio-only
        "Actor_01/._01-01-05-02-02-01-01.mp4",  # macOS resource fork
        "Actor_01/readme.txt",
    ]
    touch(root / "ravdess", *good, *not_samples)
    return sorted(Path(g).stem for g in good)


def test_samples_are_only_full_av_speech_clips(tmp_path):
    expected = _tree(tmp_path)
    samples = RavdessDataset().samples(tmp_path, make_params())
    assert [s.clip_id for s in samples] == expected
    by_id = {s.clip_id: s for s in samples}
    s = by_id["01-01-05-02-02-01-01"]
    assert s.path == "ravdess/Actor_01/01-01-05-02-02-01-01.mp4"
    assert (s.label, s.speaker) == ("angry", "01")
    assert s.meta == {"intensity": "strong", "statement": 2, "repetition": 1, "sex": "male"}
    assert by_id["01-01-08-01-01-02-02"].label == "surprised"
    assert by_id["01-01-08-01-01-02-02"].speaker == "02"
    assert all((tmp_path / s.path).is_file() for s in samples)


def test_samples_keep_only_the_configured_actors(tmp_path):
    _tree(tmp_path)
    samples = RavdessDataset().samples(tmp_path, make_params({"ravdess": {"actors": [2]}}))
    assert {s.speaker for s in samples} == {"02"}
    assert len(samples) == 2


def test_samples_without_clips_raise(tmp_path):
    touch(tmp_path / "ravdess", "Actor_01/02-01-01-01-01-01-01.mp4")
    with pytest.raises(DataError, match="no full-AV speech clips"):
        RavdessDataset().samples(tmp_path, make_params())


def _legacy_entry(srv, name: str, data: bytes) -> dict:
    """Zenodo's legacy API: links.self is the download."""
    url = srv.add(f"/api/files/bucket/{name}", data)
    return {
        "key": name,
        "size": len(data),
        "checksum": "md5:" + hashlib.md5(data).hexdigest(),
        "links": {"self": url},
    }


def _rdm_entry(srv, name: str, data: bytes) -> dict:
    """InvenioRDM API: links.content is the download, links.self the file's metadata."""
    content = srv.add(f"/api/records/1188976/files/{name}/content", data)
    meta = srv.url(f"/api/records/1188976/files/{name}")
    return {
        "id": "abc",
        "key": name,
        "size": len(data),
        "checksum": "md5:" + hashlib.md5(data).hexdigest(),
        "links": {"self": meta, "content": content},
    }


def _archives(actors: list[int]) -> dict[str, bytes]:
    return {
        archive_name(a): zip_bytes(
            {
                f"Actor_{a:02d}/01-01-03-01-01-01-{a:02d}.mp4": b"av" * (50 + a),
                f"Actor_{a:02d}/02-01-03-01-01-01-{a:02d}.mp4": b"video-only",
            }
        )
        for a in actors
    }


@pytest.mark.parametrize("shape", ["legacy", "rdm", "entries"])
def test_sources_from_a_zenodo_record(file_server, shape):
    archives = _archives([1, 2, 3])
    make = _legacy_entry if shape == "legacy" else _rdm_entry
    entries = [make(file_server, n, d) for n, d in archives.items()]
    entries.append(make(file_server, "Audio_Speech_Actors_01-24.zip", b"audio"))
    files = {"enabled": True, "entries": {e["key"]: e for e in entries}}
    record = {"id": 1188976, "files": files if shape == "entries" else entries}
    url = file_server.add_json("/api/records/1188976", record)

    params = make_params({"ravdess": {"record_url": url, "actors": [3, 1]}}, download=FAST)
    sources = RavdessDataset().sources(params)

    assert [s.dest for s in sources] == [
        "archives/ravdess/Video_Speech_Actor_01.zip",
        "archives/ravdess/Video_Speech_Actor_03.zip",
    ]
    for src, name in zip(sources, ["Video_Speech_Actor_01.zip", "Video_Speech_Actor_03.zip"]):
        assert src.md5 == hashlib.md5(archives[name]).hexdigest()
        assert src.size == len(archives[name])
        assert src.extract_to == "ravdess"
        assert src.url.endswith(name if shape == "legacy" else f"{name}/content")
    assert file_server.requests_for("/api/records/1188976")[0].headers["Accept"] == (
        "application/json"
    )


def test_download_stage_fetches_verifies_extracts_and_indexes(file_server, tmp_path):
    """The record's md5/size verify the real bytes; the extracted AV clips are indexed."""
    archives = _archives([1, 2])
    entries = [_rdm_entry(file_server, n, d) for n, d in archives.items()]
    url = file_server.add_json("/api/records/1188976", {"files": entries})
    root = tmp_path / "raw"
    params = make_params(
        {"dataset": "ravdess", "root": str(root), "ravdess": {"record_url": url, "actors": [1, 2]}},
        download=FAST,
    )
    run(params)
    index = pd.read_csv(root / "index.csv", dtype=str)
    assert index[["clip_id", "label", "speaker", "sex"]].values.tolist() == [
        ["01-01-03-01-01-01-01", "happy", "01", "male"],
        ["01-01-03-01-01-01-02", "happy", "02", "female"],
    ]
    assert index["path"].tolist() == [
        "ravdess/Actor_01/01-01-03-01-01-01-01.mp4",
        "ravdess/Actor_02/01-01-03-01-01-01-02.mp4",
    ]
    meta = json.loads((root / "dataset.json").read_text())
    assert meta == {
        "name": "ravdess", "classes": list(EMOTIONS), "n_folds": 6, "n_clips": 2,
        "modalities": ["audio", "video"],
    }  # fmt: skip


def test_sources_name_archives_missing_from_the_record(file_server):
    entries = [_legacy_entry(file_server, n, d) for n, d in _archives([1]).items()]
    url = file_server.add_json("/api/records/1188976", {"files": entries})
    params = make_params({"ravdess": {"record_url": url, "actors": [1, 7]}}, download=FAST)
    with pytest.raises(DownloadError, match=r"Video_Speech_Actor_07\.zip") as err:
        RavdessDataset().sources(params)
    assert "Video_Speech_Actor_01.zip" not in str(err.value).split("does not list")[1]
    assert "data.ravdess.record_url" in str(err.value)


def test_record_without_md5_prefix_and_deposition_shape():
    record = {
        "files": [
            {
                "filename": "a.zip",
                "filesize": 3,
                "checksum": "ABCDEF",
                "links": {"download": "http://h/a.zip"},
            },
            {"key": "b.zip", "size": 1, "checksum": "sha256:00", "links": {"self": "http://h/b"}},
            {"key": "nolink.zip"},
        ]
    }
    files = record_files(record)
    assert files == {
        "a.zip": {"url": "http://h/a.zip", "size": 3, "md5": "abcdef"},
        "b.zip": {"url": "http://h/b", "size": 1, "md5": None},
    }


def test_audio_modality_takes_the_audio_only_speech_clips(tmp_path):
    _tree(tmp_path)
    touch(
        tmp_path / "ravdess",
        "Actor_02/03-01-04-01-01-01-02.wav",
        "Actor_01/03-02-04-01-01-01-01.wav",
    )
    audio = make_params({"modality": "audio"})
    samples = RavdessDataset().samples(tmp_path, audio)
    assert [s.path for s in samples] == [
        "ravdess/Actor_02/03-01-04-01-01-01-02.wav",
        "ravdess/Actor_01/03-01-05-01-01-01-01.wav",
    ]  # speech only (03-02 is song), by clip_id
    assert [s.label for s in samples] == ["sad", "angry"]
    assert RavdessDataset().modalities(audio, samples) == ("audio",)
    only_actor_2 = make_params({"modality": "audio", "ravdess": {"actors": [2]}})
    assert len(RavdessDataset().samples(tmp_path, only_actor_2)) == 1
    with pytest.raises(DataError, match=r"no audio-only speech clips \(03-01-\*\.wav\)"):
        RavdessDataset().samples(tmp_path / "empty", audio)


def test_audio_modality_downloads_the_audio_archive(file_server):
    entries = [_legacy_entry(file_server, n, d) for n, d in _archives([1]).items()]
    entries.append(_legacy_entry(file_server, AUDIO_ARCHIVE, b"audio"))
    url = file_server.add_json("/api/records/1188976", {"files": entries})
    params = make_params({"modality": "audio", "ravdess": {"record_url": url}}, download=FAST)
    sources = RavdessDataset().sources(params)
    assert [(s.dest, s.extract_to) for s in sources] == [
        (f"archives/ravdess/{AUDIO_ARCHIVE}", "ravdess")
    ]

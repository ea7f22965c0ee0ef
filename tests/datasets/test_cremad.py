"""CREMA-D: names, the LFS manifest, LFS pointers, perceived labels and demographics."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from aver.datasets.cremad import (
    CLASSES,
    EXTENSIONS,
    CremadDataset,
    parse_cremad_name,
    parse_lfs_pointer,
    perceived_label,
    read_manifest,
)
from aver.errors import DataError, DownloadError
from tests.datasets.conftest import make_params, touch

FAST = {"retries": 0, "backoff_s": 0.0, "timeout_s": 5.0, "workers": 2}
SHA = "10dc3fd1f2bc8203657431598bd7dc9312462008f93d08fda786043ae6a8d2f4"


def _shared(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "cremad"
    if not (path / "lfs-manifest.tsv").is_file():
        pytest.skip(f"{path} has no lfs-manifest.tsv")
    return path


def _shared_params(shared: Path, **cremad) -> object:
    cfg = {"manifest": str(shared / "lfs-manifest.tsv"), "tables": str(shared), **cremad}
    return make_params({"cremad": cfg}, download=FAST)


def test_parse_real_names():
    assert parse_cremad_name("1001_DFA_ANG_XX.flv") == {
        "actor": 1001,
        "sentence": "DFA",
        "emotion": "anger",
        "intensity": "XX",
    }
    info = parse_cremad_name("VideoMP4/1091_WSI_SAD_HI.mp4")
    assert (info["actor"], info["sentence"], info["emotion"], info["intensity"]) == (
        1091,
        "WSI",
        "sad",
        "HI",
    )
    assert parse_cremad_name("1042_IEO_HAP_LO")["emotion"] == "happy"
    assert CLASSES == ("anger", "disgust", "fear", "happy", "neutral", "sad")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("1000_DFA_ANG_XX.flv", "actor 1000"),
        ("1092_DFA_ANG_XX.flv", "actor 1092"),
        ("1001_ABC_ANG_XX.flv", "sentence ABC"),
        ("1001_DFA_JOY_XX.flv", "emotion JOY"),
        ("1001_DFA_ANG_QQ.flv", "level QQ"),
        ("1001-DFA-ANG-XX.flv", "not a CREMA-D file name"),
        ("1001_DFA_ANG.flv", "not a CREMA-D file name"),
    ],
)
def test_malformed_names(name, why):
    with pytest.raises(DataError, match=why):
        parse_cremad_name(name)


def test_every_name_in_the_summary_table_parses(shared_dir):
    shared = _shared(shared_dir)
    with open(shared / "summaryTable.csv", newline="") as fh:
        infos = [parse_cremad_name(r["FileName"]) for r in csv.DictReader(fh)]
    assert len(infos) == 7442
    assert {i["actor"] for i in infos} == set(range(1001, 1092))
    assert {i["emotion"] for i in infos} == set(CLASSES)
    assert len({i["sentence"] for i in infos}) == 12
    assert {i["intensity"] for i in infos} == {"LO", "MD", "HI", "XX"}


def test_perceived_label_letters():
    assert [perceived_label(v) for v in "ADFHNS"] == list(CLASSES)
    assert perceived_label("A:D") is None
    assert perceived_label("") is None
    assert perceived_label(None) is None
    assert perceived_label(" N ") == "neutral"


def test_manifest_sources_have_sha256_and_size(shared_dir):
    shared = _shared(shared_dir)
    params = _shared_params(shared)
    sources = CremadDataset().sources(params)
    # Independent read of the manifest's VideoFlash rows.
    with open(shared / "lfs-manifest.tsv") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh][1:]
    flash = sorted(r for r in rows if r[0].startswith("VideoFlash/"))
    assert len(sources) == len(flash) == 7442  # tables are local: no table sources
    for src, (path, sha, size) in zip(sources, flash):
        assert src.dest == f"cremad/{path}"
        assert src.url == f"{params.data.cremad.media_url}/{path}"
        assert (src.sha256, src.size) == (sha, int(size))
        assert src.md5 is None and src.extract_to is None
    first = sources[0]
    assert first.dest == "cremad/VideoFlash/1001_DFA_ANG_XX.flv"
    assert (first.sha256, first.size) == (SHA, 265922)
    assert all(len(s.sha256) == 64 and s.size > 0 for s in sources)


def test_limit_takes_the_first_sorted_clips(shared_dir):
    shared = _shared(shared_dir)
    sources = CremadDataset().sources(_shared_params(shared, limit=5))
    names = [Path(s.dest).stem for s in sources]
    assert names == ["1001_DFA_ANG_XX", "1001_DFA_DIS_XX", "1001_DFA_FEA_XX",
                     "1001_DFA_HAP_XX", "1001_DFA_NEU_XX"]  # fmt: skip


def test_missing_tables_become_sources(shared_dir, tmp_path):
    shared = _shared(shared_dir)
    params = make_params(
        {
            "cremad": {
                "manifest": str(shared / "lfs-manifest.tsv"),
                "tables": str(tmp_path),
                "limit": 2,
                "raw_url": "http://raw.example/CREMA-D/master",
            }
        }
    )
    sources = CremadDataset().sources(params)
    assert [(s.url, s.dest) for s in sources[:2]] == [
        ("http://raw.example/CREMA-D/master/processedResults/summaryTable.csv",
         "cremad/summaryTable.csv"),
        ("http://raw.example/CREMA-D/master/VideoDemographics.csv",
         "cremad/VideoDemographics.csv"),
    ]  # fmt: skip
    assert len(sources) == 4


def _pointer(sha: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n".encode()


SUMMARY = (
    '"","FileName","VoiceVote","VoiceLevel","FaceVote","FaceLevel","MultiModalVote",'
    '"MultiModalLevel"\n'
    '"1","1001_IEO_NEU_XX","N","69.1","N","92.22","N","64.78"\n'
    '"2","1001_IEO_HAP_LO","N","71.67","H","57","H","57.38"\n'
    '"3","1002_DFA_ANG_XX","A","50","A","50","A:D","40"\n'
)
DEMOGRAPHICS = (
    '"ActorID","Age","Sex","Race","Ethnicity"\n'
    '1001,51,"Male","Caucasian","Not Hispanic"\n'
    '1002,21,"Female","Caucasian","Not Hispanic"\n'
)


@pytest.mark.parametrize("folder", ["VideoFlash", "VideoMP4"])
def test_pointer_fallback_without_manifest(file_server, tmp_path, folder):
    ext = {"VideoFlash": "flv", "VideoMP4": "mp4"}[folder]
    base = "/CheyneyComputerScience/CREMA-D/master"
    file_server.add(f"{base}/processedResults/summaryTable.csv", SUMMARY.encode())
    file_server.add(f"{base}/VideoDemographics.csv", DEMOGRAPHICS.encode())
    expected = {}
    for i, name in enumerate(["1001_IEO_HAP_LO", "1001_IEO_NEU_XX", "1002_DFA_ANG_XX"]):
        sha, size = f"{i:x}" * 64, 1000 + i
        file_server.add(f"{base}/{folder}/{name}.{ext}", _pointer(sha, size))
        expected[name] = (sha, size)
    params = make_params(
        {
            "cremad": {
                "manifest": str(tmp_path / "absent.tsv"),
                "tables": str(tmp_path),
                "raw_url": file_server.url(base),
                "media_url": "http://media.example/m",
                "folder": folder,
            }
        },
        download=FAST,
    )
    sources = CremadDataset().sources(params)
    assert [s.dest for s in sources[:2]] == [
        "cremad/summaryTable.csv",
        "cremad/VideoDemographics.csv",
    ]
    media = sources[2:]
    assert [Path(s.dest).stem for s in media] == sorted(expected)
    for src in media:
        name = Path(src.dest).stem
        assert src.dest == f"cremad/{folder}/{name}.{ext}"
        assert src.url == f"http://media.example/m/{folder}/{name}.{ext}"
        assert (src.sha256, src.size) == expected[name]


def test_manifest_without_the_folder_falls_back_to_pointers(file_server, shared_dir):
    shared = _shared(shared_dir)
    base = "/raw"
    with open(shared / "summaryTable.csv", newline="") as fh:
        first = sorted(r["FileName"] for r in csv.DictReader(fh))[:3]
    for name in first:
        file_server.add(f"{base}/VideoMP4/{name}.mp4", _pointer("a" * 64, 7))
    params = _shared_params(shared, folder="VideoMP4", limit=3, raw_url=file_server.url(base))
    sources = CremadDataset().sources(params)
    assert [Path(s.dest).name for s in sources] == [f"{n}.mp4" for n in first]
    assert {(s.sha256, s.size) for s in sources} == {("a" * 64, 7)}


def test_a_non_pointer_raises():
    with pytest.raises(DownloadError, match="not a Git LFS pointer"):
        parse_lfs_pointer("<html>rate limited</html>", "http://h/x.flv")
    assert parse_lfs_pointer(_pointer("b" * 64, 12).decode()) == ("b" * 64, 12)


def test_bad_manifest_names_the_file_and_line(tmp_path):
    bad = tmp_path / "m.tsv"
    bad.write_text("path\tsha256\tsize\nVideoFlash/a.flv\tnothex\t12\n")
    with pytest.raises(DataError, match="line 2") as err:
        read_manifest(bad)
    assert str(bad) in str(err.value)
    bad.write_text("path\tsize\nVideoFlash/a.flv\t12\n")
    with pytest.raises(DataError, match="sha256"):
        read_manifest(bad)


def _votes(shared: Path) -> dict[str, str]:
    with open(shared / "summaryTable.csv", newline="") as fh:
        return {r["FileName"]: r["MultiModalVote"] for r in csv.DictReader(fh)}


def _media_tree(root: Path, votes: dict[str, str]) -> list[str]:
    """Empty clips: some voted as intended, some voted otherwise, some ties."""
    letter = {"ANG": "A", "DIS": "D", "FEA": "F", "HAP": "H", "NEU": "N", "SAD": "S"}
    agree = [n for n, v in votes.items() if v == letter[n.split("_")[2]]][:4]
    differ = [n for n, v in votes.items() if len(v) == 1 and v != letter[n.split("_")[2]]][:4]
    ties = [n for n, v in votes.items() if ":" in v][:3]
    names = sorted(agree + differ + ties)
    touch(root / "cremad" / "VideoFlash", *[f"{n}.flv" for n in names])
    touch(root / "cremad" / "VideoFlash", "notes.flv", "1001_DFA_ANG_XX.mp3")
    return names


def test_intended_labels_and_demographics(shared_dir, tmp_path):
    shared = _shared(shared_dir)
    votes = _votes(shared)
    names = _media_tree(tmp_path, votes)
    samples = CremadDataset().samples(tmp_path, _shared_params(shared))
    assert [s.clip_id for s in samples] == names
    letters = dict(zip("ADFHNS", CLASSES))
    with open(shared / "VideoDemographics.csv", newline="") as fh:
        people = {r["ActorID"]: r for r in csv.DictReader(fh)}
    for s in samples:
        info = parse_cremad_name(s.clip_id)
        assert s.label == info["emotion"] == s.meta["intended_label"]
        assert s.speaker == str(info["actor"])
        assert s.path == f"cremad/VideoFlash/{s.clip_id}.flv"
        assert s.meta["perceived_label"] == letters.get(votes[s.clip_id], "")
        assert s.meta["sex"] == people[s.speaker]["Sex"].lower()
        assert s.meta["age"] == int(people[s.speaker]["Age"])
        assert s.meta["intensity"] == info["intensity"]


def test_perceived_labels_drop_ties(shared_dir, tmp_path, caplog):
    shared = _shared(shared_dir)
    votes = _votes(shared)
    names = _media_tree(tmp_path, votes)
    params = _shared_params(shared, label_source="perceived")
    with caplog.at_level("INFO"):
        samples = CremadDataset().samples(tmp_path, params)
    kept = [n for n in names if ":" not in votes[n]]
    assert [s.clip_id for s in samples] == kept and len(kept) == len(names) - 3
    letters = dict(zip("ADFHNS", CLASSES))
    assert [s.label for s in samples] == [letters[votes[n]] for n in kept]
    assert sum(s.label != s.meta["intended_label"] for s in samples) == 4
    assert "dropped 3 of 11" in caplog.text


def test_samples_limit_and_downloaded_tables(tmp_path):
    root = tmp_path / "raw"
    touch(root / "cremad" / "VideoFlash", *[f"{n}.flv" for n in
          ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1002_DFA_ANG_XX"]])  # fmt: skip
    (root / "cremad" / "summaryTable.csv").write_text(SUMMARY)
    (root / "cremad" / "VideoDemographics.csv").write_text(DEMOGRAPHICS)
    params = make_params({"cremad": {"tables": str(tmp_path / "none"), "limit": 2}})
    samples = CremadDataset().samples(root, params)
    assert [(s.clip_id, s.label, s.meta["sex"], s.meta["age"]) for s in samples] == [
        ("1001_IEO_HAP_LO", "happy", "male", 51),
        ("1001_IEO_NEU_XX", "neutral", "male", 51),
    ]
    (root / "cremad" / "VideoDemographics.csv").unlink()
    with pytest.raises(DataError, match=r"VideoDemographics\.csv not found"):
        CremadDataset().samples(root, params)


def test_audio_wav_folder_is_an_audio_only_dataset():
    wavs = make_params({"cremad": {"folder": "AudioWAV"}})
    assert EXTENSIONS["AudioWAV"] == "wav"
    assert CremadDataset().modalities(wavs, []) == ("audio",)
    assert CremadDataset().modalities(make_params(), []) == ("audio", "video")
    assert CremadDataset().modalities(make_params({"modality": "audio"}), []) == ("audio",)

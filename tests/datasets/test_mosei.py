"""CMU-MOSEI: opt-in sources, dominant-emotion labels, segments found on disk."""

from __future__ import annotations

import pytest

from aver.datasets.mosei import CLASSES, EMOTIONS, MoseiDataset, dominant_emotion
from aver.errors import ConfigError, DataError
from tests.datasets.conftest import make_params, touch

HEADER = "video_id,clip_id,start,end,happiness,sadness,anger,fear,disgust,surprise\n"


def _scores(**kw: float) -> dict[str, float]:
    return {e: kw.get(e, 0.0) for e in EMOTIONS}


def test_dominant_emotion_argmax_neutral_and_ties():
    assert CLASSES == ("neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise")
    assert dominant_emotion(_scores(happiness=0.33, anger=1.67)) == "anger"
    assert dominant_emotion(_scores(surprise=0.1)) == "surprise"
    assert dominant_emotion(_scores()) == "neutral"
    # ties go to the emotion listed first: happiness < sadness < anger < fear < disgust < surprise
    assert dominant_emotion(_scores(anger=1.0, sadness=1.0, surprise=1.0)) == "sadness"
    assert dominant_emotion(_scores(disgust=2.0, fear=2.0)) == "fear"
    with pytest.raises(ValueError, match="NaN"):
        dominant_emotion(_scores(fear=float("nan")))


def test_sources_are_opt_in():
    with pytest.raises(ConfigError, match=r"data\.mosei\.subsets is empty") as err:
        MoseiDataset().sources(make_params())
    assert "data.mosei.labels_url" in str(err.value)
    with pytest.raises(ConfigError, match=r"data\.mosei\.labels_url is not set"):
        MoseiDataset().sources(make_params({"mosei": {"subsets": ["Segmented.zip"]}}))


def test_sources_list_archives_and_labels(tmp_path):
    cfg = {"base_url": "http://host/raw/", "subsets": ["Videos/Seg_1.zip", "Seg_2.tar.gz"],
           "labels_url": "http://host/labels.csv"}  # fmt: skip
    sources = MoseiDataset().sources(make_params({"mosei": cfg}))
    assert [(s.url, s.dest, s.extract_to) for s in sources] == [
        ("http://host/raw/Videos/Seg_1.zip", "archives/mosei/Seg_1.zip", "mosei"),
        ("http://host/raw/Seg_2.tar.gz", "archives/mosei/Seg_2.tar.gz", "mosei"),
        ("http://host/labels.csv", "mosei/labels.csv", None),
    ]
    local = tmp_path / "labels.csv"
    local.write_text(HEADER)
    sources = MoseiDataset().sources(make_params({"mosei": {**cfg, "labels_url": str(local)}}))
    assert len(sources) == 2  # a local labels file is read in place


def test_samples_from_labels_and_segments(tmp_path, caplog):
    root = tmp_path
    touch(root / "mosei" / "Raw" / "Segmented", "vidA_0.mp4", "vidA_3.mp4", "vidB_1.mp4",
          "zzz_9.mp4", "vidA_0.txt")  # fmt: skip
    (root / "mosei" / "labels.csv").write_text(
        HEADER
        + "vidA,0,0.0,4.5,0,0,0,0,0,0\n"
        + "vidA,3,10.0,14.0,2.0,0.33,0,0,0,0\n"
        + "vidB,vidB_1,1.5,3.0,0,1.0,1.0,0,0,0\n"  # clip id already holds the video id
        + "vidC,2,0,1,3,0,0,0,0,0\n"  # no media on disk
    )
    with caplog.at_level("INFO"):
        samples = MoseiDataset().samples(root, make_params())
    assert [(s.clip_id, s.label, s.speaker, s.meta["start"], s.meta["end"]) for s in samples] == [
        ("vidA_0", "neutral", "vidA", 0.0, 4.5),
        ("vidA_3", "happiness", "vidA", 10.0, 14.0),
        ("vidB_1", "sadness", "vidB", 1.5, 3.0),
    ]
    assert samples[0].path == "mosei/Raw/Segmented/vidA_0.mp4"
    assert "1 of 4 labelled segments have no media" in caplog.text


def test_segment_column_alias_and_bad_labels(tmp_path):
    touch(tmp_path / "mosei", "v_1.mp4")
    labels = tmp_path / "mosei" / "labels.csv"
    labels.write_text(HEADER.replace("clip_id", "segment") + "v,1,0,1,0,0,0,1,0,0\n")
    assert [s.label for s in MoseiDataset().samples(tmp_path, make_params())] == ["fear"]

    labels.write_text("video_id,clip_id,start,end,happiness\nv,1,0,1,1\n")
    with pytest.raises(DataError, match=r"lacks column.*sadness") as err:
        MoseiDataset().samples(tmp_path, make_params())
    assert str(labels) in str(err.value)

    labels.write_text(HEADER + "v,1,0,1,high,0,0,0,0,0\n")
    with pytest.raises(DataError, match="line 2"):
        MoseiDataset().samples(tmp_path, make_params())

    labels.write_text(HEADER + "w,7,0,1,1,0,0,0,0,0\n")
    with pytest.raises(DataError, match="no labelled MOSEI segment"):
        MoseiDataset().samples(tmp_path, make_params())

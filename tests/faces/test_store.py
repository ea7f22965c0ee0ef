"""FaceStore: shard round trip, index columns, clear errors on damaged shards."""

from __future__ import annotations

import numpy as np
import pytest

from aver.errors import DataError
from aver.faces.store import FaceStore, write_store


def _clip(rng: np.random.Generator, n: int, size: int = 16) -> dict[str, np.ndarray]:
    return {
        "frames": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        "times": ((np.arange(n) + 0.5) / 25).astype(np.float32),
        "detected": rng.random(n) > 0.3,
        "landmarks": rng.uniform(0, 300, (n, 5, 2)).astype(np.float32),
    }


@pytest.fixture
def store_dir(tmp_path):
    rng = np.random.default_rng(0)
    clips = {f"clip{i}": _clip(rng, n) for i, n in enumerate([7, 3, 11])}
    items = [
        (cid, arr, {"detection_rate": arr["detected"].mean(), "fps": 25.0})
        for cid, arr in clips.items()
    ]
    write_store(tmp_path / "faces", items, max_bytes=8000)  # ~one clip per shard
    return tmp_path / "faces", clips


def test_round_trip_and_index(store_dir):
    path, clips = store_dir
    store = FaceStore(path)
    assert sorted(store.clip_ids) == sorted(clips)
    assert list(store.index.columns[:3]) == ["clip_id", "shard", "offset"]
    shards = sorted(p.name for p in path.glob("shard-*"))
    assert len(shards) >= 2  # several clips per file, split when a shard is full
    assert len(list(path.rglob("*.npy"))) == 4 * len(shards)
    for cid, arrays in clips.items():
        got = store.load(cid)
        assert set(got) == {"frames", "times", "detected", "landmarks"}
        for name, value in arrays.items():
            assert got[name].dtype == value.dtype
            assert np.array_equal(got[name], value), name
        row = store.index.set_index("clip_id").loc[cid]
        assert row.n_frames == len(arrays["times"])
        assert row.detection_rate == pytest.approx(arrays["detected"].mean(), abs=1e-6)
        assert row.fps == 25.0


def test_corrupt_shard_names_the_file(store_dir):
    path, _ = store_dir
    store = FaceStore(path)
    shard = store.index.set_index("clip_id").loc["clip1", "shard"]
    target = path / shard / "frames.npy"
    target.write_bytes(b"\x93NUMPY garbage" + bytes(40))
    with pytest.raises(DataError, match=rf"{shard}/frames\.npy"):
        FaceStore(path).load("clip1")


def test_truncated_or_missing_shard_names_the_file(store_dir):
    path, _ = store_dir
    store = FaceStore(path)
    shard = store.index.set_index("clip_id").loc["clip2", "shard"]
    target = path / shard / "landmarks.npy"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{shard}/landmarks\.npy"):
        FaceStore(path).load("clip2")
    target.unlink()
    with pytest.raises(DataError, match=rf"{shard}/landmarks\.npy.*missing"):
        FaceStore(path).load("clip2")


def test_missing_index_and_unknown_clip(tmp_path, store_dir):
    with pytest.raises(DataError, match=r"index\.csv"):
        FaceStore(tmp_path / "nowhere")
    with pytest.raises(DataError, match="not in the aligned-face store"):
        FaceStore(store_dir[0]).load("nope")

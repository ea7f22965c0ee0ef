"""The align stage end to end on generated clips of real photos."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from aver.config import parse_params
from aver.errors import DataError
from aver.faces.alignment import template, transform_points, umeyama
from aver.faces.pipeline import run
from aver.faces.store import FaceStore
from aver.failures import read_failures
from tests.faces.conftest import blank, face_crop, gap_clip, moving_face, place, two_faces


def _params(tmp_path, interim, **align):
    """Every sampled frame kept (keep_fps: source) unless a test says otherwise."""
    return parse_params(
        {
            "data": {"root": str(tmp_path / "raw")},
            "extract": {"out": str(interim)},
            "align": {
                "out": str(tmp_path / "faces"), "workers": 1, "size": 64, "keep_fps": "source",
                **align,
            },
        }
    )  # fmt: skip


def _red_patch_clip(n: int) -> list[np.ndarray]:
    face = face_crop("hopper").copy()
    face[10:40, 100:150] = (255, 0, 0)  # on the hat, above the eyes
    return [place(blank(), face, 60, 30, 170) for _ in range(n)]


def _raw_index(tmp_path, labels: dict[str, str]) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [
        {"clip_id": c, "path": f"{c}.mp4", "label": lab, "speaker": "1"}
        for c, lab in labels.items()
    ]
    pd.DataFrame(rows).to_csv(raw / "index.csv", index=False)
    (raw / "dataset.json").write_text(json.dumps({"name": "t", "classes": ["happy", "sad"]}))


def test_stage_aligns_tracks_records_failures_and_plots(tmp_path, make_interim):
    clips = {
        "a_moving": moving_face(30),
        "b_two": two_faces(30, "hopper", "astronaut"),
        "c_gap": gap_clip(30, range(10, 20)),
        "d_noface": [blank(s) for s in range(30)],
        "e_red": _red_patch_clip(30),
        "f_broken": b"\x00\x01 not a video" * 50,
    }
    interim = make_interim(clips)
    _raw_index(tmp_path, {c: ("happy" if i % 2 else "sad") for i, c in enumerate(clips)})
    params = _params(tmp_path, interim, max_failure_fraction=0.4, detect_every=2)
    summary = run(params)
    out = tmp_path / "faces"
    assert not (tmp_path / "faces.partial").exists()
    assert summary["aligned"] == 4 and summary["failed"] == 2

    failures = {f.clip_id: f for f in read_failures(out / "failures.csv")}
    assert set(failures) == {"d_noface", "f_broken"}
    assert "face found in 0% of 30 sampled frames" in failures["d_noface"].reason
    assert "align.min_detection_rate" in failures["d_noface"].reason
    broken = failures["f_broken"]  # named by its original file, from the raw index
    assert broken.stage == "align" and broken.path == (tmp_path / "raw/f_broken.mp4").as_posix()

    store = FaceStore(out)
    assert sorted(store.clip_ids) == ["a_moving", "b_two", "c_gap", "e_red"]
    index = store.index.set_index("clip_id")
    assert len({*index.shard}) == 1  # small clips share one shard file set
    for cid in store.clip_ids:
        arr = store.load(cid)
        assert arr["frames"].shape == (30, 64, 64, 3) and arr["frames"].dtype == np.uint8
        assert np.allclose(arr["times"], (np.arange(30) + 0.5) / 25, atol=1e-6)
        assert index.loc[cid, "n_frames"] == 30 and index.loc[cid, "fps"] == 25
        assert index.loc[cid, "detection_rate"] == pytest.approx(arr["detected"].mean())
    # the gap clip: face gone in 10..19; detect_every=2 misses 10..18, finds 8 and 20 -> 9..19
    gap = store.load("c_gap")["detected"]
    assert not gap[9:20].any() and gap[:9].all() and gap[20:].all()
    assert index.loc["c_gap", "detection_rate"] == pytest.approx(19 / 30)
    # two faces: the landmarks follow the larger (left) face
    assert (store.load("b_two")["landmarks"][:, :, 0] < 160).all()

    plots = out / "plots"
    sheet = cv2.imread(str(plots / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 64
    hist = pd.read_csv(plots / "detection_rate.csv")
    assert list(hist.columns) == ["bin_start", "bin_end", "clips"]
    assert hist["clips"].sum() == 5  # every decodable clip, the faceless one in the first bin
    assert hist.loc[0, "clips"] == 1
    assert (plots / "detection_rate.png").stat().st_size > 1000


def test_rgb_order_survives_decode_align_and_store(tmp_path, make_interim):
    interim = make_interim({"red": _red_patch_clip(10)})
    run(_params(tmp_path, interim, size=112))
    arr = FaceStore(tmp_path / "faces").load("red")
    # where the patch centre lands in the aligned crop (patch pasted at crop rows 10..40,
    # cols 100..150, scaled by 170/280 and offset by (60, 30) on the canvas)
    k = 170 / face_crop("hopper").shape[0]
    centre = np.array([60 + 125 * k, 30 + 25 * k])
    m = umeyama(arr["landmarks"][5], template(112))
    x, y = np.round(transform_points(m, centre)).astype(int)
    assert 0 <= x < 112 and 0 <= y < 112
    r, g, b = arr["frames"][5, y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0)
    assert r > 180 and g < 70 and b < 70, (r, g, b)


def test_all_faceless_fails_the_stage_with_the_table(tmp_path, make_interim):
    interim = make_interim({"x": [blank(s) for s in range(8)]})
    with pytest.raises(DataError, match=r"1/1 clips failed.*face found in 0%"):
        run(_params(tmp_path, interim))
    table = tmp_path / "faces.partial" / "failures.csv"
    assert [f.clip_id for f in read_failures(table)] == ["x"]
    assert not (tmp_path / "faces").exists()


def test_rerun_resumes_finished_clips_and_restarts_on_new_params(tmp_path, make_interim, caplog):
    interim = make_interim({"ok": moving_face(10), "none": [blank(s) for s in range(10)]})
    with pytest.raises(DataError):
        run(_params(tmp_path, interim))  # 1/2 failed > 25%: stage stops, work is kept
    with caplog.at_level(logging.INFO, logger="aver.faces.pipeline"):
        summary = run(_params(tmp_path, interim, max_failure_fraction=0.5))
    assert "resuming: 2 of 2 clips already aligned" in caplog.text
    assert summary["aligned"] == 1 and summary["seconds"] < 1.0
    assert FaceStore(tmp_path / "faces").load("ok")["frames"].shape == (10, 64, 64, 3)

    with pytest.raises(DataError):
        run(_params(tmp_path, interim, size=48))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="aver.faces.pipeline"):
        run(_params(tmp_path, interim, size=32, max_failure_fraction=0.5))
    assert "starting over" in caplog.text
    assert FaceStore(tmp_path / "faces").load("ok")["frames"].shape == (10, 32, 32, 3)


def test_sigterm_keeps_aligned_clips_and_a_rerun_resumes(tmp_path, make_interim, venv_env):
    n = 8
    interim = make_interim({f"c{i}": moving_face(30) for i in range(n)})
    raw = {
        "data": {"root": str(tmp_path / "raw")},
        "extract": {"out": str(interim)},
        "align": {"out": str(tmp_path / "faces"), "workers": 2, "size": 64, "device": "cpu"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "aver.cli", "align", "--params", "params.yaml"]
    clips = tmp_path / "faces.partial" / "clips"
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=venv_env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while len(list(clips.glob("*.json"))) < 1:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "align did not finish a clip"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` does: the pool's workers get it too
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "aver align: terminated (SIGTERM)" in err
    kept = {p.stem for p in clips.glob("*.json")}
    assert 1 <= len(kept) < n, "the stop came too late to leave work undone"
    assert not (tmp_path / "faces").exists()

    done = subprocess.run(cmd, cwd=tmp_path, env=venv_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = re.search(r"resuming: (\d+) of 8 clips already aligned", done.stderr)
    assert resumed and int(resumed.group(1)) >= len(kept), done.stderr[-3000:]
    assert sorted(FaceStore(tmp_path / "faces").clip_ids) == [f"c{i}" for i in range(n)]
    assert not (tmp_path / "faces.partial").exists()


def _blank_video(manifest_dir, clip_ids) -> None:
    """Mark clips as audio-only in the manifest (video "", as extract writes them)."""
    path = manifest_dir / "manifest.csv"
    table = pd.read_csv(path, dtype={"video": str})
    table.loc[table["clip_id"].isin(clip_ids), "video"] = ""
    table.to_csv(path, index=False)


def test_clips_without_video_pass_through(tmp_path, make_interim):
    interim = make_interim({"a_face": moving_face(10), "b_sound": moving_face(10)})
    _blank_video(interim, ["b_sound"])
    _raw_index(tmp_path, {"a_face": "happy", "b_sound": "sad"})
    summary = run(_params(tmp_path, interim))
    assert summary["aligned"] == 1 and summary["failed"] == 0 and summary["audio_only"] == 1
    assert FaceStore(tmp_path / "faces").clip_ids == ["a_face"]
    assert not read_failures(tmp_path / "faces" / "failures.csv")


def test_audio_only_dataset_aligns_nothing_and_fails_nothing(tmp_path, make_interim):
    interim = make_interim({"a": moving_face(5), "b": moving_face(5)})
    _blank_video(interim, ["a", "b"])
    _raw_index(tmp_path, {"a": "happy", "b": "sad"})
    summary = run(_params(tmp_path, interim))
    assert summary == summary | {"clips": 0, "aligned": 0, "failed": 0, "audio_only": 2}
    assert FaceStore(tmp_path / "faces").clip_ids == []


def test_default_stores_faces_at_the_cache_rate_and_the_cache_window_keeps_its_shape(
    tmp_path, make_interim
):
    from aver.features.video import video_window

    interim = make_interim({"m": moving_face(30)})  # 1.2 s at 25 fps
    params = parse_params(
        {
            "data": {"root": str(tmp_path / "raw")},
            "extract": {"out": str(interim)},
            "align": {"out": str(tmp_path / "faces"), "workers": 1, "size": 64},
            "cache": {"video_fps": 5.0},
        }
    )
    assert params.align.keep_fps == "cache"
    run(params)
    few = FaceStore(tmp_path / "faces")
    arr = few.load("m")
    # instants (k + 0.5) / 5 s, each taken from the 25 fps frame that covers it
    want = (np.arange(6) + 0.5) / 5
    assert arr["frames"].shape == (6, 64, 64, 3)
    assert np.abs(arr["times"] - want).max() <= 0.5 / 25 + 1e-6
    assert few.index.set_index("clip_id").loc["m", "n_frames"] == 6

    full = {"keep_fps": "source", "out": str(tmp_path / "faces-full")}
    run(params.model_copy(update={"align": params.align.model_copy(update=full)}))
    every = FaceStore(tmp_path / "faces-full").load("m")
    assert len(every["frames"]) == 30
    for start in (0.0, 0.3):
        a = video_window(arr, start, 5, 5.0, 32)
        b = video_window(every, start, 5, 5.0, 32)
        assert a[0].shape == b[0].shape == (5, 32, 32, 3)
        assert (a[1] == b[1]).all()  # the same grid positions hold a face


def test_keep_fps_is_a_rate_a_name_or_an_error():
    from aver.faces.pipeline import keep_rate

    def params(keep, video_fps=5.0):
        return parse_params({"align": {"keep_fps": keep}, "cache": {"video_fps": video_fps}})

    assert keep_rate(params("cache")) == 5.0
    assert keep_rate(params("source")) is None
    assert keep_rate(params(10)) == 10.0
    assert keep_rate(params(50)) is None  # above align.sample_fps: every sampled frame
    for bad in (0, -1, "fast"):
        with pytest.raises(Exception, match="keep_fps"):
            params(bad)


def test_packing_deletes_each_clips_file_once_read(tmp_path):
    from aver.faces.pipeline import _packed, _result_paths

    arrays = {"frames": np.zeros((2, 4, 4, 3), np.uint8), "times": np.zeros(2, np.float32)}
    for cid in ("a", "b"):
        np.savez(_result_paths(tmp_path, cid)[0], **arrays)
    packed = _packed(tmp_path, ["a", "b"], {"a": {}, "b": {}})
    assert next(packed)[0] == "a"
    assert not (tmp_path / "a.npz").exists() and (tmp_path / "b.npz").exists()
    assert [c for c, _, _ in packed] == ["b"]
    assert not list(tmp_path.glob("*.npz"))

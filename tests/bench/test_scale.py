"""bench/scale.py: the demo size for N clips, disk bytes counted once per file."""

from __future__ import annotations

import os

from bench.scale import _outs, demo_size, disk_bytes


def test_demo_size_gives_about_the_asked_clips_with_24_speakers():
    assert demo_size(1500) == (24, 16)  # 24 x 4 classes x 16 = 1536
    speakers, per_class = demo_size(60)
    assert speakers == 15 and speakers * 4 * per_class == 60
    assert demo_size(5) == (3, 1)  # the fewest the folds accept


def test_disk_bytes_counts_hard_links_once_and_not_symlink_targets(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100_000)
    os.link(tmp_path / "a", tmp_path / "b")
    os.symlink(tmp_path / "a", tmp_path / "c")
    one = disk_bytes(tmp_path / "a")
    assert one >= 100_000
    assert disk_bytes(tmp_path) < 2 * one
    assert disk_bytes(tmp_path / "missing") == 0


def test_stage_outputs_come_from_dvc_yaml(repo_root):
    outs = _outs(repo_root, "train")
    assert repo_root / "models/model.pt" in outs and repo_root / "models/train_summary.json" in outs

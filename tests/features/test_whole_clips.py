"""Whole utterances: every window of a clip cached, trained on and aggregated like predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aver.features.audio import load_wav
from aver.features.cache import FeatureCache
from aver.features.loader import make_loader
from aver.features.pipeline import face_loader
from aver.inference import class_probabilities, predict, windows_arrays
from aver.models.output import ModelOutput
from aver.predict.windows import MARGIN_S, WavReader
from aver.windows import AGGREGATE, mean_probabilities, window_starts
from tests.features.conftest import SR, build_cache, make_params, whole_clips

WINDOW, HOP = 1.0, 0.5


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeatureCache]:
    root = tmp_path_factory.mktemp("whole")
    out = build_cache(root, whole_clips(), window_s=WINDOW, hop_s=HOP, max_clip_s=10.0)
    return root, FeatureCache(out)


class MeanAudio(nn.Module):
    """Logits from the masked mean of the audio frames (a model that sees the window's sound)."""

    def __init__(self, bins: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(bins, 2)

    def forward(self, batch):
        m = batch["audio_mask"].unsqueeze(-1).float()
        pooled = (batch["audio"] * m).sum(1) / m.sum(1).clamp(min=1)
        return ModelOutput(logits=self.fc(pooled) * 5, aux_losses={})


def test_a_clip_longer_than_the_window_contributes_all_its_windows(whole):
    root, cache = whole
    meta = json.loads((cache.path / "meta.json").read_text())
    assert meta["windows"] == {
        "window_s": WINDOW, "hop_s": HOP, "max_clip_s": 10.0, "crop": "center",
        "aggregate": AGGREGATE, "train": "one random window per clip per epoch",
    }  # fmt: skip
    assert meta["n_windows"] == int(cache.index["n_windows"].sum())
    params = make_params(root, window_s=WINDOW, hop_s=HOP, max_clip_s=10.0)
    faces = face_loader(root / "faces")
    for clip in whole_clips():
        duration = len(clip.wave) / SR
        starts = window_starts(duration, WINDOW, HOP)
        assert cache.n_windows(clip.clip_id) == len(starts) >= 1
        stacked = cache.read_windows(clip.clip_id)
        # the rows are the windows predict cuts from the same sound and faces
        wave, _ = load_wav(root / "interim" / "audio" / f"{clip.clip_id}.wav")
        segments = [(s, wave[round(s * SR) :]) for s in starts]
        ref = windows_arrays(segments, SR, faces(clip.clip_id), params.cache, SR)
        for k, arrays in enumerate(ref):
            for name, value in arrays.items():
                np.testing.assert_allclose(stacked[name][k], value, rtol=1e-5, atol=1e-5)
            assert stacked["audio_times"][k][0] == pytest.approx(starts[k] + 256 / SR, abs=1e-4)
    assert cache.index.set_index("clip_id").at["sp0-angry", "n_windows"] == 1  # 0.6 s: padded
    assert cache.n_windows("sp4-angry") == len(window_starts(3.1, WINDOW, HOP)) == 6


def test_the_cap_keeps_the_middle_of_a_long_clip(tmp_path):
    clips = whole_clips()
    out = build_cache(tmp_path, clips, window_s=WINDOW, hop_s=HOP, max_clip_s=2.0)
    cache = FeatureCache(out)
    assert cache.n_windows("sp4-angry") == 3  # 2 s of 3.1 s: windows at 0.55, 1.05, 1.55
    first = cache.read("sp4-angry", 0)["audio_times"][0]
    assert first == pytest.approx(0.55 + 256 / SR, abs=1e-3)
    assert cache.n_windows("sp0-angry") == 1


def test_evaluation_scores_every_window_training_one_random_window(whole):
    _, cache = whole
    for fold in range(cache.n_folds):
        ids = cache.split_ids(fold, "test")
        seen = [c for b in make_loader(cache, fold, "test", 4, train=False) for c in b["clip_id"]]
        assert seen == [c for c in ids for _ in range(cache.n_windows(c))]  # consecutive
    train_ids = cache.split_ids(0, "train")
    picks: dict[str, set[float]] = {c: set() for c in train_ids}
    for _ in range(12):  # successive epochs of one loader
        loader = make_loader(cache, 0, "train", 4, train=True, augment=False, seed=1)
        loader.sampler.set_epoch(_)
        n = 0
        for batch in loader:
            for cid, times in zip(batch["clip_id"], batch["audio_times"]):
                picks[cid].add(round(float(times[0]), 3))
                n += 1
        assert n in (len(train_ids), len(train_ids) - 1)  # one window a clip (drop_last)
    for cid in train_ids:  # over the epochs every window of a clip is shown
        assert len(picks[cid]) == cache.n_windows(cid), cid
    same = [b["audio"] for b in make_loader(cache, 0, "train", 4, train=True, seed=1)]
    again = [b["audio"] for b in make_loader(cache, 0, "train", 4, train=True, seed=1)]
    assert all(torch.equal(a, b) for a, b in zip(same, again))  # deterministic from the seed


def test_a_clips_score_is_the_mean_of_its_window_probabilities(whole):
    _, cache = whole
    model = MeanAudio(cache.shapes["audio"][0][1]).eval()
    fold = 1
    stats = cache.fold_stats(fold)
    p = predict(model, make_loader(cache, fold, "test", 3, train=False))
    ids = cache.split_ids(fold, "test")
    assert p.clip_ids == ids and len(p.probs) == len(ids)  # one row per clip
    for i, cid in enumerate(ids):
        windows = [cache.read(cid, k) for k in range(cache.n_windows(cid))]
        window_probs = class_probabilities(model, windows, stats)
        np.testing.assert_allclose(p.probs[i], mean_probabilities(window_probs), atol=1e-6)
        assert p.y_pred[i] == int(np.argmax(p.probs[i]))
        assert p.y_true[i] == cache.label_idx(cid)


def test_predict_cuts_the_same_windows_as_the_cache(whole, tmp_path):
    """aver predict's reader (a partial WAV read of each window) gives the cached arrays."""
    root, cache = whole
    params = make_params(root, window_s=WINDOW, hop_s=HOP, max_clip_s=10.0)
    faces = face_loader(root / "faces")("sp4-angry")
    wav = WavReader(root / "interim" / "audio" / "sp4-angry.wav")
    starts = window_starts(3.1, WINDOW, HOP)
    segments = [wav.segment(s, WINDOW + MARGIN_S) for s in starts]
    ours = windows_arrays(segments, wav.sample_rate, faces, params.cache, SR)
    stacked = cache.read_windows("sp4-angry")
    for k, arrays in enumerate(ours):
        for name, value in arrays.items():
            np.testing.assert_allclose(stacked[name][k], value, rtol=1e-5, atol=1e-5)

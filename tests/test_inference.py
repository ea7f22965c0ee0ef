"""aver.inference: window slicing of long clips, batching + softmax, device and batch helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aver.config import CacheConfig
from aver.errors import AverError
from aver.features import batch_from_arrays, clip_features
from aver.features.audio import AudioSpec, audio_features
from aver.inference import (
    EmptyLoader,
    class_probabilities,
    load_trained_model,
    move_batch,
    predict,
    probabilities,
    resolve_device,
    shift_faces,
    window_arrays,
    window_starts,
)
from tests.fixtures.make_model_v1 import fixed_inputs

# ---- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "window", "expected"),
    [
        (1.6, 1.6, [0.0]),  # the demo: one window
        (1.0, 2.0, [0.0]),  # shorter than the window: one padded window
        (5.0, 2.0, [0.0, 1.0, 2.0, 3.0]),
        (5.5, 2.0, [0.0, 1.0, 2.0, 3.0, 3.5]),  # the last window ends at the clip's end
        (2.05, 2.0, [0.0, 0.05]),
    ],
)
def test_window_starts(duration, window, expected):
    starts = window_starts(duration, window)
    np.testing.assert_allclose(starts, expected, atol=1e-9)
    assert np.all(starts + window <= max(duration, window) + 1e-9)


def _synthetic_clip(duration: float = 5.0, sr: int = 16000, fps: float = 25.0):
    """Noise whose loudness steps up every second; face frames whose pixels hold their index."""
    rng = np.random.default_rng(0)
    t = np.arange(round(duration * sr)) / sr
    wave = (rng.standard_normal(len(t)) * 0.05 * (1 + np.floor(t))).astype(np.float32)
    n = round(duration * fps)
    frames = np.zeros((n, 16, 16, 3), np.uint8)
    frames[...] = (np.arange(n) % 256)[:, None, None, None]
    times = ((np.arange(n) + 0.5) / fps).astype(np.float32)
    return wave, sr, {"frames": frames, "times": times}


def test_window_arrays_cut_both_modalities_at_the_start():
    wave, sr, faces = _synthetic_clip()
    cfg = CacheConfig(window_s=2.0, video_fps=5.0, face_size=16, n_mels=32)
    arrays = window_arrays(wave, sr, faces, 2.0, cfg, sr)

    # audio: the same features as the 2 s of samples from t = 2 s, timestamps on the video axis
    spec = AudioSpec.from_config(cfg, sr)
    direct = audio_features(wave[2 * sr : 4 * sr], spec)
    np.testing.assert_allclose(arrays["audio"], direct, rtol=1e-5, atol=1e-5)
    assert arrays["audio_mask"].all()
    np.testing.assert_allclose(arrays["audio_times"], spec.frame_times(len(direct), 2.0), atol=1e-5)

    # video: 10 frames at 5 fps from t = 2 s; each the aligned frame nearest its grid time
    vt = arrays["video_times"]
    assert arrays["video_mask"].all() and len(vt) == 10
    assert vt.min() >= 2.0 and vt.max() < 4.0
    frame_index = arrays["video"][:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(frame_index, np.round(vt * 25 - 0.5).astype(int))
    np.testing.assert_allclose(vt, 2.0 + (np.arange(10) + 0.5) / 5.0, atol=0.021)


def test_window_arrays_pad_past_the_end():
    wave, sr, faces = _synthetic_clip(duration=3.0)
    cfg = CacheConfig(window_s=2.0, video_fps=5.0, face_size=16, n_mels=32)
    arrays = window_arrays(wave, sr, faces, 2.0, cfg, sr)  # only 1 s of the clip is left
    assert 0.4 < arrays["audio_mask"].mean() < 0.6
    assert arrays["video_mask"].sum() == 5
    assert not arrays["video"][~arrays["video_mask"]].any()


def test_window_at_zero_matches_the_cache_window():
    """With the clip as long as the window, the timeline window is the cached one."""
    wave, sr, faces = _synthetic_clip(duration=2.0)
    cfg = CacheConfig(window_s=2.0, video_fps=5.0, face_size=16, n_mels=32, crop="center")
    cached = clip_features(wave, faces, cfg, sample_rate=sr, target_rate=sr)
    ours = window_arrays(wave, sr, faces, 0.0, cfg, sr)
    for key, value in cached.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)


def test_shift_faces_keeps_frames():
    _, _, faces = _synthetic_clip(duration=1.0)
    shifted = shift_faces(faces, 0.5)
    assert shifted["frames"] is faces["frames"]
    np.testing.assert_allclose(shifted["times"], faces["times"] - 0.5, atol=1e-6)


# ---- running a model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    from pathlib import Path

    return load_trained_model(Path(__file__).parent / "fixtures" / "model-v1.pt")


def _clips(n: int) -> list[dict[str, np.ndarray]]:
    return [c for seed in range(n) for c in fixed_inputs(seed)][:n]


def test_class_probabilities_batches_give_the_same_numbers(trained):
    """Any batch size gives the one-batch probabilities (float64, rows summing to 1)."""
    clips, stats = _clips(5), trained.card.fold_stats()
    whole = class_probabilities(trained.model, clips, stats, batch_size=len(clips))
    for size in (1, 2, 3):
        np.testing.assert_allclose(
            class_probabilities(trained.model, clips, stats, batch_size=size), whole, atol=1e-6
        )
    assert whole.dtype == np.float64 and whole.shape == (5, 3)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-12)


def test_probabilities_is_the_softmax_of_the_logits(trained):
    batch = batch_from_arrays(_clips(2), trained.card.fold_stats())
    probs = probabilities(trained.model, batch)  # clip_id and label are dropped
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if torch.is_tensor(v) and k != "label"}
        logits = trained.model(inputs).logits
    np.testing.assert_allclose(probs, torch.softmax(logits, -1).numpy(), atol=1e-7)
    assert not trained.model.training


def test_predict_over_a_loader_matches_probabilities(trained):
    stats = trained.card.fold_stats()
    clips = _clips(4)
    batches = [
        batch_from_arrays(clips[i : i + 2], stats, labels=[0, 2], clip_ids=[f"c{i}", f"c{i + 1}"])
        for i in (0, 2)
    ]
    p = predict(trained.model, batches)
    np.testing.assert_allclose(p.probs, class_probabilities(trained.model, clips, stats), atol=1e-6)
    assert p.y_pred.tolist() == p.probs.argmax(axis=1).tolist()
    assert p.y_true.tolist() == [0, 2, 0, 2] and p.clip_ids == ["c0", "c1", "c2", "c3"]
    assert np.isnan(p.loss)  # no loss_fn
    with_loss = predict(trained.model, batches, loss_fn=lambda out, y: torch.tensor(2.0))
    assert with_loss.loss == pytest.approx(2.0)
    with pytest.raises(EmptyLoader, match="no batches"):
        predict(trained.model, [])


def test_device_and_batch_helpers():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(AverError, match=r"train\.device: auto or cpu"):
            resolve_device("cuda")
    moved = move_batch({"x": torch.zeros(2), "clip_id": ["a", "b"]}, torch.device("cpu"))
    assert moved["clip_id"] == ["a", "b"] and moved["x"].device.type == "cpu"

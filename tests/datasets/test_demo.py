"""The generated demo dataset: real MP4 streams, determinism, detectable faces, label design."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from aver.config import DemoConfig
from aver.datasets import get_dataset
from aver.datasets.demo import (
    EMOTIONS,
    generate,
    plan_clips,
    render_audio,
    render_media,
    speaker_appearance,
)
from tests.datasets.conftest import make_params

TINY = {"speakers": 2, "clips_per_class": 1, "duration_s": 1.0, "size": 160}
NAME = re.compile(r"^01-01-0[1345]-0[12]-0[12]-0[12]-\d\d$")


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, audio (N,) float32) of an MP4."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, audio


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("raw")
    return root, generate(root, DemoConfig(**TINY))


@pytest.fixture(scope="module")
def faces(tiny) -> dict[str, dict]:
    """MTCNN on every third frame of each tiny clip: detection flags and mouth-corner height.

    Mouth-corner height = (mean of the corners - mean of the eyes) along the face's down axis, in
    inter-ocular distances (invariant to head translation, roll and scale).
    """
    from facenet_pytorch import MTCNN

    detector = MTCNN(keep_all=True, min_face_size=20, device="cpu")
    out = {}
    for path in tiny[1]:
        frames = decode(path)[0][::3]
        boxes, _, points = detector.detect(frames, landmarks=True)
        heights = []
        for lm in points:
            if lm is None:
                continue
            le, re_, _, ml, mr = lm[0]
            d = np.linalg.norm(re_ - le)
            right = (re_ - le) / d
            down = np.array([-right[1], right[0]])
            heights.append(float(np.dot((ml + mr) / 2 - (le + re_) / 2, down) / d))
        out[path.stem] = {"detected": [b is not None for b in boxes], "corner": np.mean(heights)}
    return out


def test_plan_matches_the_default_size_and_ravdess_names():
    clips = plan_clips(DemoConfig())
    assert len(clips) == 12 * 4 * 3
    names = [c.clip_id for c in clips]
    assert len(set(names)) == len(names)
    assert all(NAME.match(n) for n in names)
    # Every class gets the same (intensity, statement, repetition) combinations.
    combos = {
        e: sorted((c.intensity, c.statement, c.repetition) for c in clips if c.emotion == e)
        for e in EMOTIONS
    }
    assert len({tuple(v) for v in combos.values()}) == 1
    assert clips[0].relpath == "demo/Actor_01/01-01-01-01-01-01-01.mp4"


def test_streams_are_h264_and_aac_at_the_configured_rates(tiny):
    _, paths = tiny
    assert len(paths) == 2 * 4 and all(p.is_file() for p in paths)
    for path in paths:
        with av.open(str(path)) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            assert v.codec_context.name == "h264"
            assert a.codec_context.name == "aac"
            assert v.average_rate == 25
            assert (v.codec_context.width, v.codec_context.height) == (160, 160)
            assert a.rate == 16000 and a.layout.nb_channels == 1
            assert c.duration / 1e6 == pytest.approx(1.0, abs=0.05)
        frames, audio = decode(path)
        assert frames.shape == (25, 160, 160, 3)
        assert 16000 <= audio.size <= 16000 + 2048  # AAC pads the last frame
        assert np.abs(audio).max() > 0.01


def test_samples_parse_the_generated_names(tiny):
    root, paths = tiny
    spec = get_dataset("demo")
    assert (spec.name, spec.classes, spec.n_folds) == (
        "demo",
        ("neutral", "happy", "sad", "angry"),
        3,
    )
    samples = spec.samples(root, make_params({"demo": TINY}))
    assert [s.clip_id for s in samples] == sorted(p.stem for p in paths)
    assert {s.label for s in samples} == set(spec.classes)
    assert {s.speaker for s in samples} == {"01", "02"}
    for s in samples:
        assert (root / s.path).is_file()
        assert EMOTIONS[s.label].code == int(s.clip_id.split("-")[2])
        assert s.meta["sex"] == ("male" if s.speaker == "01" else "female")
        assert s.meta["intensity"] == "normal"
        assert (s.meta["statement"], s.meta["repetition"]) == (1, 1)


def test_rerun_skips_finished_clips_and_leaves_no_temp_files(tiny):
    root, paths = tiny
    before = {p: p.stat().st_mtime_ns for p in paths}
    assert generate(root, DemoConfig(**TINY)) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == before
    assert not [p for p in (root / "demo").rglob("*") if ".tmp" in p.name]


def test_same_seed_decodes_identically_and_another_seed_differs(tiny, tmp_path):
    root, paths = tiny
    again = generate(tmp_path / "same", DemoConfig(**TINY))
    other = generate(tmp_path / "other", DemoConfig(**TINY, seed=1))
    for a, b, c in zip(paths, again, other):
        assert a.relative_to(root) == b.relative_to(tmp_path / "same")
        fa, aa = decode(a)
        fb, ab = decode(b)
        fc, ac = decode(c)
        assert np.array_equal(fa, fb) and np.array_equal(aa, ab)
        assert not np.array_equal(fa, fc) and not np.array_equal(aa[: ac.size], ac[: aa.size])


def test_a_changed_config_replaces_the_old_clips(tmp_path):
    first = generate(tmp_path, DemoConfig(**{**TINY, "duration_s": 0.5, "size": 64}))
    stray = tmp_path / "demo/Actor_07/01-01-01-01-01-01-07.mp4"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"")
    second = generate(tmp_path, DemoConfig(**{**TINY, "clips_per_class": 2, "size": 64}))
    assert not stray.exists()
    assert len(second) == 16 and set(first) < set(second)
    assert sorted((tmp_path / "demo").glob("Actor_*/*.mp4")) == sorted(second)
    with av.open(str(second[0])) as c:
        assert c.duration / 1e6 == pytest.approx(1.0, abs=0.05)


def test_mtcnn_finds_a_face_in_nearly_every_frame(faces):
    flags = np.concatenate([f["detected"] for f in faces.values()])
    assert flags.size >= 60
    assert flags.mean() >= 0.95
    for emotion in EMOTIONS:
        code = f"-{EMOTIONS[emotion].code:02d}-"
        per_class = np.concatenate([f["detected"] for k, f in faces.items() if code in k[5:9]])
        assert per_class.mean() >= 0.9, emotion


def test_mouth_corners_rise_for_happy_drop_for_sad_and_stay_for_angry(faces):
    for actor in ("01", "02"):

        def corner(code: str, actor: str = actor) -> float:
            return faces[f"01-01-{code}-01-01-01-{actor}"]["corner"]

        neutral = corner("01")
        assert corner("03") < neutral - 0.03  # happy: corners up (smaller height)
        assert corner("04") > neutral + 0.03  # sad: corners down
        assert abs(corner("05") - neutral) < 0.03  # angry: the same neutral face


def test_expression_scale_strengthens_the_expression_only():
    """data.demo.expression scales the face's warp away from the neutral face; the clip is
    otherwise the same (head motion, mouth, voice)."""
    base = DemoConfig(**TINY)
    for emotion in ("happy", "sad"):
        clip = next(c for c in plan_clips(base) if c.emotion == emotion)
        look = speaker_appearance(base.seed, clip.speaker, base.size)
        renders = {
            scale: render_media(clip, look, DemoConfig(**TINY, expression=scale))
            for scale in (1e-3, 1.0, 2.0)
        }
        neutral = renders[1e-3][0].astype(np.int16)
        change = {s: np.abs(renders[s][0] - neutral).mean() for s in (1.0, 2.0)}
        assert change[2.0] > 1.25 * change[1.0] > 0, (emotion, change)
        np.testing.assert_array_equal(renders[1.0][1], renders[2.0][1])  # the voice


def _f0_semitones(x: np.ndarray, sr: int = 16000) -> float:
    """Median autocorrelation f0 of the loud frames, in semitones re 1 Hz."""
    frame, hop = 640, 320
    starts = range(0, x.size - frame, hop)
    rms = np.array([np.sqrt(np.mean(x[i : i + frame] ** 2)) for i in starts])
    f0 = []
    for i, r in zip(starts, rms):
        if r < 0.3 * rms.max():
            continue
        w = x[i : i + frame] - x[i : i + frame].mean()
        ac = np.correlate(w, w, "full")[frame - 1 :]
        lo, hi = sr // 450, sr // 70
        f0.append(sr / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(12 * np.log2(f0)))


def _features(x: np.ndarray) -> list[float]:
    return [float(np.log(np.sqrt(np.mean(x**2)))), _f0_semitones(x)]


def test_decoded_audio_is_louder_and_higher_for_high_arousal(tiny):
    _, paths = tiny
    feats = {p.stem: _features(decode(p)[1]) for p in paths}
    for actor in ("01", "02"):
        low = [feats[f"01-01-{c}-01-01-01-{actor}"] for c in ("01", "04")]
        high = [feats[f"01-01-{c}-01-01-01-{actor}"] for c in ("03", "05")]
        assert min(h[0] for h in high) > max(lo[0] for lo in low) + np.log(1.5)  # RMS x1.5+
        assert min(h[1] for h in high) > max(lo[1] for lo in low) + 1.0  # f0 +1 semitone


def test_audio_carries_arousal_only():
    """Label design: audio separates arousal, but not neutral/sad nor happy/angry."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cfg = DemoConfig(speakers=4, clips_per_class=6, duration_s=0.8)
    clips = plan_clips(cfg)
    x = np.array([_features(render_audio(c, cfg)[0]) for c in clips])
    y = np.array([c.emotion for c in clips])
    groups = np.array([c.speaker for c in clips])
    for s in set(groups):  # per-speaker normalisation: relative cues, as a model would learn
        x[groups == s] = (x[groups == s] - x[groups == s].mean(0)) / x[groups == s].std(0)

    def accuracy(mask: np.ndarray, target: np.ndarray) -> float:
        clf = make_pipeline(StandardScaler(), LogisticRegression())
        cv = GroupKFold(4)
        return cross_val_score(clf, x[mask], target[mask], groups=groups[mask], cv=cv).mean()

    everything = np.ones(len(y), bool)
    high = np.isin(y, ["happy", "angry"])
    assert accuracy(everything, high) >= 0.9
    assert accuracy(~high, y) <= 0.7  # neutral vs sad: chance is 0.5
    assert accuracy(high, y) <= 0.7  # happy vs angry
    for k in range(x.shape[1]):  # same distribution within an arousal level
        gap = x[high, k].mean() - x[~high, k].mean()
        assert abs(x[y == "neutral", k].mean() - x[y == "sad", k].mean()) < 0.25 * abs(gap)
        assert abs(x[y == "happy", k].mean() - x[y == "angry", k].mean()) < 0.25 * abs(gap)

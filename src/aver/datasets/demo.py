"""The offline `demo` dataset: generated talking-face MP4s with RAVDESS-style names.

Label design (what later stages measure): audio carries arousal only (neutral and sad are low,
happy and angry high), video carries facial expression only (happy smiles, sad frowns, neutral and
angry show the same neutral face). Audio alone cannot split neutral/sad or happy/angry (~50% at
best), video alone cannot split neutral/angry (~75% at best); audio + video resolve all four.

Layout: `<root>/demo/Actor_XX/01-01-EE-II-SS-RR-AA.mp4` (H.264 + AAC), named as RAVDESS so the
RAVDESS parser lists it; `<root>/demo/demo.json` records the generator config. Everything is
deterministic from `data.demo.seed` and the clip's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from aver.config import DemoConfig, Params
from aver.datasets.base import DatasetSpec, Sample
from aver.datasets.demo_audio import (
    Syllable,
    draw_prosody,
    mouth_opening,
    plan_syllables,
    synth_speech,
)
from aver.datasets.demo_video import Appearance, face_photos, make_appearance, render_clip
from aver.errors import DataError
from aver.io.atomic import atomic_path, write_json

GENERATOR_VERSION = 1
DIRNAME = "demo"


@dataclass(frozen=True)
class Emotion:
    code: int  # RAVDESS emotion code
    high_arousal: bool  # the audio cue
    expression: str  # the video cue: "none", "smile" or "frown"


EMOTIONS: dict[str, Emotion] = {
    "neutral": Emotion(1, False, "none"),
    "happy": Emotion(3, True, "smile"),
    "sad": Emotion(4, False, "frown"),
    "angry": Emotion(5, True, "none"),
}


@dataclass(frozen=True)
class ClipSpec:
    """One clip to generate; its name follows RAVDESS (modality 01 = audio-video, channel 01)."""

    speaker: int  # 0-based speaker index; actor id = speaker + 1
    emotion: str
    intensity: int  # 1 normal, 2 strong
    statement: int  # 1, 2
    repetition: int  # 1, 2

    @property
    def actor(self) -> int:
        return self.speaker + 1

    @property
    def clip_id(self) -> str:
        code = EMOTIONS[self.emotion].code
        return (
            f"01-01-{code:02d}-{self.intensity:02d}-{self.statement:02d}-"
            f"{self.repetition:02d}-{self.actor:02d}"
        )

    @property
    def relpath(self) -> str:
        """Path relative to data.root."""
        return f"{DIRNAME}/Actor_{self.actor:02d}/{self.clip_id}.mp4"


@dataclass(frozen=True)
class Voice:
    sex: str  # "male" for odd actor ids, "female" for even (as RAVDESS)
    base_f0: float
    formant_scale: float


def plan_clips(cfg: DemoConfig) -> list[ClipSpec]:
    """All clips for a config: every speaker x class x `clips_per_class` (intensity, statement,
    repetition) combinations, the same combinations for every class (so intensity is no cue)."""
    combos = [(1 + k % 2, 1 + (k // 2) % 2, 1 + (k // 4) % 2) for k in range(cfg.clips_per_class)]
    return [
        ClipSpec(s, emotion, i, st, r)
        for s in range(cfg.speakers)
        for emotion in EMOTIONS
        for i, st, r in combos
    ]


def speaker_voice(seed: int, speaker: int) -> Voice:
    """Per-speaker voice: odd actors male-ish (f0 ~95-130 Hz), even female-ish (~180-235 Hz)."""
    rng = np.random.default_rng([seed, speaker, 101])
    if (speaker + 1) % 2 == 1:
        return Voice("male", float(rng.uniform(95, 130)), float(rng.uniform(0.97, 1.03)))
    return Voice("female", float(rng.uniform(180, 235)), float(rng.uniform(1.12, 1.2)))


def speaker_appearance(seed: int, speaker: int, size: int) -> Appearance:
    """Per-speaker look: photo = speaker mod #photos, flipped every other round, random framing."""
    photos = face_photos()
    rng = np.random.default_rng([seed, speaker, 202])
    flip = (speaker // len(photos)) % 2 == 1
    return make_appearance(photos[speaker % len(photos)], rng, flip=flip, size=size)


def _clip_rngs(seed: int, clip: ClipSpec) -> tuple[np.random.Generator, np.random.Generator]:
    code = EMOTIONS[clip.emotion].code
    ss = np.random.SeedSequence(
        [seed, clip.speaker, code, clip.intensity, clip.statement, clip.repetition]
    )
    audio, video = ss.spawn(2)
    return np.random.default_rng(audio), np.random.default_rng(video)


def render_audio(clip: ClipSpec, cfg: DemoConfig) -> tuple[np.ndarray, list[Syllable]]:
    """(audio (N,) float32 in [-1, 1], its syllables) for one clip; depends on arousal only."""
    emotion = EMOTIONS[clip.emotion]
    voice = speaker_voice(cfg.seed, clip.speaker)
    rng = _clip_rngs(cfg.seed, clip)[0]
    syllables = plan_syllables(rng, clip.statement, cfg.duration_s)
    prosody = draw_prosody(
        rng,
        high_arousal=emotion.high_arousal,
        strong=clip.intensity == 2,
        base_f0=voice.base_f0,
    )
    audio = synth_speech(
        rng,
        syllables,
        prosody,
        formant_scale=voice.formant_scale,
        duration_s=cfg.duration_s,
        sample_rate=cfg.sample_rate,
    )
    return audio, syllables


def render_media(
    clip: ClipSpec, appearance: Appearance, cfg: DemoConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, S, S, 3) uint8 RGB, audio (N,) float32) for one clip.

    The mouth follows the audio's syllables; the face shows an expression only for happy (smile)
    and sad (frown), stronger at intensity 02, scaled by `cfg.expression`.
    """
    expression = EMOTIONS[clip.emotion].expression
    audio, syllables = render_audio(clip, cfg)
    rng = _clip_rngs(cfg.seed, clip)[1]
    times = np.arange(round(cfg.duration_s * cfg.fps)) / cfg.fps
    strength = rng.uniform(1.2, 1.8) * (1.3 if clip.intensity == 2 else 1.0) * cfg.expression
    frames = render_clip(
        appearance,
        rng,
        smile=strength if expression == "smile" else 0.0,
        frown=strength if expression == "frown" else 0.0,
        opening=mouth_opening(syllables, times),
        times=times,
    )
    return frames, audio


def write_mp4(
    path: str | Path, frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int
) -> None:
    """Encode frames (H.264, yuv420p) and mono audio (AAC) into an MP4, atomically."""
    import av

    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        # cpu-independent: without it x264 output varies between runs (and CPUs).
        video.options = {
            "crf": "20",
            "preset": "veryfast",
            "threads": "1",
            "x264-params": "cpu-independent=1",
        }
        sound = out.add_stream("aac", rate=sample_rate, layout="mono")
        sound.bit_rate = 64000
        hop = round(sample_rate / fps)
        pcm = audio.astype(np.float32)[None, :]
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
            chunk = pcm[:, i * hop : (i + 1) * hop if i < len(frames) - 1 else None]
            if chunk.shape[1]:
                a = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), "fltp", "mono")
                a.sample_rate = sample_rate
                a.pts = i * hop
                a.time_base = Fraction(1, sample_rate)
                out.mux(sound.encode(a))
        out.mux(video.encode(None))
        out.mux(sound.encode(None))


def _generate(job: tuple[ClipSpec, Appearance, DemoConfig, str]) -> str:
    clip, appearance, cfg, path = job
    import cv2

    cv2.setNumThreads(1)
    frames, audio = render_media(clip, appearance, cfg)
    write_mp4(path, frames, audio, cfg.fps, cfg.sample_rate)
    return path


def generate(root: str | Path, cfg: DemoConfig) -> list[Path]:
    """Generate the demo clips under `root/demo` (skipping finished ones); return all clip paths.

    `root/demo/demo.json` records the config; when it differs (or is missing), clips left by a
    previous config are deleted first so the folder holds exactly this config's clips.
    """
    from aver.parallel import imap_unordered

    root = Path(root)
    base = root / DIRNAME
    marker = base / "demo.json"
    record = {"generator": GENERATOR_VERSION, "config": cfg.model_dump()}
    if _read_json(marker) != record:
        for stale in base.glob("Actor_*/01-01-*.mp4"):
            stale.unlink()
        write_json(marker, record)

    clips = plan_clips(cfg)
    todo = [c for c in clips if not (root / c.relpath).is_file()]
    if todo:
        speakers = sorted({c.speaker for c in todo})
        looks = {s: speaker_appearance(cfg.seed, s, cfg.size) for s in speakers}
        jobs = [(c, looks[c.speaker], cfg, str(root / c.relpath)) for c in todo]
        for _ in imap_unordered(_generate, jobs, workers=cfg.workers, desc="demo clips"):
            pass
    return [root / c.relpath for c in clips]


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class DemoDataset(DatasetSpec):
    """Generated 4-class audio-visual dataset (offline, seconds to build); see module docstring."""

    name = "demo"
    classes = tuple(EMOTIONS)
    n_folds = 3

    def materialize(self, root: Path, params: Params) -> None:
        generate(root, params.data.demo)

    def samples(self, root: Path, params: Params) -> list[Sample]:
        """The generated clips under `<root>/demo`, parsed by the RAVDESS name parser."""
        from aver.datasets.ravdess import parse_ravdess_name, ravdess_sample

        root = Path(root)
        out = []
        for path in sorted((root / DIRNAME).glob("Actor_*/01-01-*.mp4")):
            info = parse_ravdess_name(path.name)
            if info.label not in EMOTIONS:
                continue
            out.append(ravdess_sample(path, root, info))
        if not out:
            raise DataError(
                "no demo clips (Actor_XX/01-01-*.mp4) found",
                path=root / DIRNAME,
                fix="run the download stage (dvc repro download), which generates them",
            )
        return sorted(out, key=lambda s: s.clip_id)

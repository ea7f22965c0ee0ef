"""Speech-like audio for the demo dataset, pure numpy.

A source-filter voice: glottal harmonics at f0 (additive synthesis, spectral tilt), shaped by
three formant resonances that glide between per-syllable vowel targets, syllable envelopes,
consonant noise bursts and breath noise. Emotion enters only through *arousal* (label design):
low arousal (neutral, sad) and high arousal (happy, angry) differ in pitch level, pitch range,
loudness, vocal effort (tilt, breathiness) and articulation sharpness. Syllable timing has the same
distribution for every class because the video's mouth follows it (see `mouth_opening`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Vowel formants (F1, F2, F3) in Hz for an adult male vocal tract; openness drives the jaw.
VOWELS: dict[str, tuple[tuple[float, float, float], float]] = {
    "i": ((280.0, 2250.0, 2950.0), 0.35),
    "e": ((500.0, 1850.0, 2500.0), 0.6),
    "a": ((720.0, 1150.0, 2450.0), 1.0),
    "o": ((550.0, 880.0, 2400.0), 0.75),
    "u": ((320.0, 870.0, 2250.0), 0.4),
}
BANDWIDTHS = (90.0, 110.0, 170.0)
# Vowel nuclei of the two RAVDESS statements ("Kids are talking by the door",
# "Dogs are sitting by the door"), one per syllable.
STATEMENTS = {1: "iaoiaeo", 2: "oaiiaeo"}


@dataclass(frozen=True)
class Prosody:
    """Per-clip prosody; drawn by `draw_prosody` from arousal, intensity and the speaker."""

    f0_hz: float  # pitch level
    range_st: float  # pitch excursion, semitones
    gain: float  # RMS of the voiced signal
    tilt: float  # harmonic amplitude ~ k**-tilt (lower = more effort)
    breath: float  # aspiration noise relative to voicing
    attack: float  # fraction of a syllable spent rising (lower = sharper)


@dataclass(frozen=True)
class Syllable:
    start: float  # seconds
    dur: float  # seconds
    vowel: str
    accent: float  # pitch accent, in units of the clip's range (0 = none)
    burst: float  # onset consonant noise amplitude (0 = none)


def draw_prosody(
    rng: np.random.Generator, *, high_arousal: bool, strong: bool, base_f0: float
) -> Prosody:
    """Prosody for one clip; `strong` (RAVDESS intensity 02) pushes every cue further out.

    Low and high arousal overlap a little per cue (per-clip jitter) but not on all cues at once.
    """
    push = 1.5 if strong else 1.0
    if high_arousal:
        level_st, range_st, gain_db = 4.5 * push, 3.5 * push, 7.0 * push
        tilt, breath, attack = 1.05, 0.04, 0.12
    else:
        level_st, range_st, gain_db = -0.5 * push, 1.4 / push, -1.0 * push
        tilt, breath, attack = 1.75, 0.12, 0.3
    return Prosody(
        f0_hz=float(base_f0 * 2 ** ((level_st + rng.normal(0, 1.0)) / 12)),
        range_st=float(range_st * rng.uniform(0.8, 1.25)),
        gain=float(0.05 * 10 ** ((gain_db + rng.normal(0, 1.5)) / 20)),
        tilt=float(tilt + rng.normal(0, 0.1)),
        breath=float(breath * rng.uniform(0.7, 1.3)),
        attack=float(attack * rng.uniform(0.8, 1.25)),
    )


def plan_syllables(rng: np.random.Generator, statement: int, duration_s: float) -> list[Syllable]:
    """Syllable timing for one clip (class-independent: 3.5-5.5 syllables/s, phrase pauses)."""
    vowels = STATEMENTS[statement]
    rate = rng.uniform(3.5, 5.5)
    t = rng.uniform(0.05, 0.2)
    out: list[Syllable] = []
    i = 0
    while True:
        dur = rng.uniform(0.8, 1.2) / rate
        if t + dur > duration_s - 0.04:
            break
        out.append(
            Syllable(
                start=float(t),
                dur=float(dur),
                vowel=vowels[i % len(vowels)],
                accent=float(rng.uniform(0.3, 1.0) if rng.random() < 0.4 else 0.0),
                burst=float(rng.uniform(0.3, 1.0) if rng.random() < 0.6 else 0.0),
            )
        )
        t += dur
        i += 1
        if i % len(vowels) == 0:
            t += rng.uniform(0.15, 0.3)
    return out


def syllable_envelope(syllables: list[Syllable], times: np.ndarray, attack: float) -> np.ndarray:
    """Voicing envelope in [0, 1] at `times`: raised-cosine rise over `attack`, then decay."""
    env = np.zeros(times.shape, np.float64)
    for s in syllables:
        u = (times - s.start) / s.dur
        inside = (u >= 0) & (u < 1)
        rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(u / attack, 0, 1))
        fall = 0.5 + 0.5 * np.cos(np.pi * np.clip((u - 0.55) / 0.45, 0, 1))
        env = np.where(inside, np.maximum(env, rise * fall), env)
    return env


def mouth_opening(syllables: list[Syllable], times: np.ndarray) -> np.ndarray:
    """Jaw opening in [0, 1] at `times` (video frame times), synchronous with the syllables.

    Depends only on timing and vowels, never on arousal, so video gains no arousal cue.
    """
    out = np.zeros(times.shape, np.float64)
    for s in syllables:
        u = (times - s.start) / s.dur
        bump = np.where((u >= 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 1.5, 0.0)
        out = np.maximum(out, bump * VOWELS[s.vowel][1])
    return out


def _formant_tracks(syllables: list[Syllable], times: np.ndarray, scale: float) -> np.ndarray:
    """(3, T) formant frequencies gliding between syllable vowel targets."""
    if not syllables:
        return np.tile(np.array(VOWELS["e"][0])[:, None] * scale, (1, times.size))
    centers = np.array([s.start + 0.5 * s.dur for s in syllables])
    targets = np.array([VOWELS[s.vowel][0] for s in syllables]) * scale  # (S, 3)
    return np.stack([np.interp(times, centers, targets[:, j]) for j in range(3)])


def _resonance(freq: np.ndarray, formant: np.ndarray, bw: float) -> np.ndarray:
    """Magnitude of a unity-DC second-order resonator at `freq`."""
    f2 = formant**2
    return f2 / np.sqrt((f2 - freq**2) ** 2 + (bw * freq) ** 2)


def _shaped_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec *= (freqs >= lo) & (freqs <= hi)
    out = np.fft.irfft(spec, n)
    return out / (out.std() + 1e-12)


def synth_speech(
    rng: np.random.Generator,
    syllables: list[Syllable],
    prosody: Prosody,
    *,
    formant_scale: float,
    duration_s: float,
    sample_rate: int = 16000,
) -> np.ndarray:
    """Render one clip's waveform: float32 mono in [-1, 1], `duration_s * sample_rate` samples.

    Long: one source-filter synthesis drawing from `rng` in a fixed order; the demo dataset (and
    the BENCHMARKS figures) depend on that order, so it stays in one readable sequence.
    """
    n = round(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    # Control signals on a 5 ms grid, interpolated to samples.
    hop = sample_rate // 200
    tc = np.arange(0, n + hop, hop) / sample_rate

    # Pitch: phrase declination + accents + slow drift, in semitones around the level.
    pitch_st = np.zeros_like(tc)
    if syllables:
        first, last = syllables[0].start, syllables[-1].start + syllables[-1].dur
        pitch_st += prosody.range_st * 0.5 * (1 - 2 * np.clip((tc - first) / (last - first), 0, 1))
        for s in syllables:
            if s.accent:
                mid = s.start + 0.45 * s.dur
                pitch_st += (
                    prosody.range_st * s.accent * np.exp(-0.5 * ((tc - mid) / (0.4 * s.dur)) ** 2)
                )
    drift = np.cumsum(rng.normal(0, 0.08, tc.size))
    pitch_st += drift - drift.mean()
    f0c = prosody.f0_hz * 2 ** (pitch_st / 12)
    f0 = np.interp(t, tc, f0c) * (1 + 0.004 * rng.standard_normal(n))  # jitter
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate

    # Harmonic amplitudes (source tilt x formant filter), computed on the control grid.
    formants = _formant_tracks(syllables, tc, formant_scale)
    k_max = int(0.45 * sample_rate / f0c.min())
    ks = np.arange(1, k_max + 1)[:, None]
    freq = ks * f0c[None, :]
    amp = ks ** (-prosody.tilt) * np.ones_like(freq)
    for j, bw in enumerate(BANDWIDTHS):
        amp = amp * _resonance(freq, formants[j][None, :], bw * formant_scale)
    amp *= freq < 0.45 * sample_rate
    voiced = np.zeros(n)
    for k in range(k_max):
        voiced += np.interp(t, tc, amp[k]) * np.sin((k + 1) * phase)
    env = syllable_envelope(syllables, t, prosody.attack)
    voiced *= env
    voiced *= 1.0 / (np.sqrt(np.mean(voiced[env > 0.3] ** 2)) + 1e-12) if (env > 0.3).any() else 0

    # Aspiration during voicing, consonant bursts at syllable onsets, breath in pauses.
    aspiration = _shaped_noise(rng, n, sample_rate, 1000, 5000) * env * prosody.breath
    bursts = np.zeros(n)
    for s in syllables:
        if s.burst:
            u = (t - s.start) / 0.035
            bursts += s.burst * np.where((u >= 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)), 0)
    consonants = _shaped_noise(rng, n, sample_rate, 2500, 7000) * bursts * 0.35
    pause = 1 - syllable_envelope(syllables, t, 0.3)
    breath = _shaped_noise(rng, n, sample_rate, 300, 3000) * pause * 0.02
    floor = _shaped_noise(rng, n, sample_rate, 50, 7500) * 1e-3  # same level for every class

    signal = prosody.gain * (voiced + aspiration + consonants + breath) + floor
    return np.clip(signal, -1.0, 1.0).astype(np.float32)

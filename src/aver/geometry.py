"""Token-time geometry behind the TaRoPE and CTM defaults (pure functions, numpy only).

TaRoPE rotates feature pair k of a head of width d by `omega_k * t / tau` with
`omega_k = base ** (-2k / d)`: the fastest pair (k = 0) turns 1 rad per `tau` seconds, the
slowest (k = d/2 - 1) `base ** (-(d - 2) / d)` rad per `tau`. CTM makes the video tokens within
`ctm_delta_s` of an audio token its positives. The encoders fix the token rates: one video token
per face frame (`cache.video_fps`), one audio token per `AUDIO_TOKEN_FRAMES` feature frames of
`cache.hop_ms` (a pretrained speech encoder's 20 ms frames are pooled by 2 by
`LayerWeightedAudioEncoder`: the same 40 ms audio tokens). The defaults follow from these
numbers for the default cache (2 s window, video every 200 ms, audio every 40 ms) and the
default head width 16:

- `tau_s` 0.04: the fastest pair turns 1 rad per audio token (no aliasing at the audio rate,
  which needs < pi) and 2.5 rad over half a video period, so it separates "same instant" from
  "half a face frame away".
- `rope_base` 100: the slowest pair turns about 1 rad over the window (0.89 rad over 2 s), so
  it orders every pair of tokens in the clip without wrapping, and the 8 pairs turn 50 down to
  0.89 rad over the window. With 10000 the slowest turned 0.016 rad and half the pairs (4 of 8)
  0.5 rad or less: pairs whose rotation barely changes across the clip.
- `ctm_delta_s` 0.1: every audio token has a video positive when `ctm_delta_s >= 0.5 /
  cache.video_fps` (half a video period); with 0.04 only 41% of the demo cache's audio tokens
  had one (2 x 0.04 x 5 = 40% expected at an arbitrary phase).
"""

from __future__ import annotations

import numpy as np

AUDIO_TOKEN_FRAMES = 4  # AudioConvEncoder: two max-pools of 2 -> one token per 4 feature frames
TIME_EPS_S = 1e-6  # tolerance on |t - s| <= delta for float timestamps (the CTM loss's too)


def rope_rotation(span_s: float, *, tau_s: float, base: float, d_head: int, pair: int) -> float:
    """Radians TaRoPE's feature pair `pair` turns over `span_s` seconds."""
    if d_head < 2 or d_head % 2 or not 0 <= pair < d_head // 2:
        raise ValueError(
            f"need an even d_head >= 2 and 0 <= pair < d_head / 2, got {d_head}/{pair}"
        )
    return span_s / tau_s * base ** (-2.0 * pair / d_head)


def lowest_rope_rotation(span_s: float, *, tau_s: float, base: float, d_head: int) -> float:
    """Radians the slowest TaRoPE pair turns over `span_s` (e.g. cache.window_s)."""
    return rope_rotation(span_s, tau_s=tau_s, base=base, d_head=d_head, pair=d_head // 2 - 1)


def rope_base_for(span_s: float, *, tau_s: float, d_head: int, radians: float = 1.0) -> float:
    """The base at which the slowest pair turns `radians` over `span_s`."""
    if d_head < 4 or d_head % 2:
        raise ValueError(f"need an even d_head >= 4 (two pairs or more), got {d_head}")
    return (span_s / (tau_s * radians)) ** (d_head / (d_head - 2))


def positive_fraction(
    a_times: np.ndarray,
    v_times: np.ndarray,
    delta_s: float,
    a_mask: np.ndarray | None = None,
    v_mask: np.ndarray | None = None,
) -> float:
    """Fraction of real audio tokens with a real video token of their clip within `delta_s`.

    Times (T,) for one clip or (B, T) per clip; masks (same shapes) mark real tokens (default
    all). The CTM loss has a signal only for these audio anchors. NaN when no audio token is real.
    """
    at, vt = np.atleast_2d(np.asarray(a_times, float)), np.atleast_2d(np.asarray(v_times, float))
    am = np.ones(at.shape, bool) if a_mask is None else np.atleast_2d(np.asarray(a_mask, bool))
    vm = np.ones(vt.shape, bool) if v_mask is None else np.atleast_2d(np.asarray(v_mask, bool))
    near = np.abs(at[:, :, None] - vt[:, None, :]) <= delta_s + TIME_EPS_S
    has = (near & vm[:, None, :]).any(axis=2)[am]
    return float(has.mean()) if has.size else float("nan")


def min_ctm_delta(video_fps: float) -> float:
    """Smallest ctm_delta_s that gives every audio token a video positive: half a video period."""
    return 0.5 / video_fps


def expected_positive_fraction(delta_s: float, video_fps: float) -> float:
    """Share of the time axis within `delta_s` of a video token on a 1/video_fps grid: the
    expected fraction of audio tokens with a CTM positive when their phase against the video
    grid is arbitrary, min(1, 2 * delta_s * video_fps)."""
    return min(1.0, 2.0 * delta_s * video_fps)

"""extract_clip(): one time axis for audio and video, and normalised outputs for every format."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf

from aver.config import ExtractConfig
from aver.media.extract import MANIFEST_COLUMNS, ExtractError, extract_clip, output_size
from aver.media.ffmpeg import ffmpeg_exe
from aver.media.probe import MediaError
from tests.media.conftest import EVENT_S, GOOD

CFG = ExtractConfig()
FRAME_S = 1.0 / CFG.fps


def _extract(src, tmp_path, cfg=CFG):
    audio, video = tmp_path / "out.wav", tmp_path / "out.mp4"
    row = extract_clip(src, audio, video, cfg)
    return row, audio, video


def _video_frames(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [
            (float(f.pts * f.time_base), f.to_ndarray(format="gray"), f.rotation)
            for f in c.decode(stream)
        ]
        return stream, frames


def _beep_onset_s(wav):
    samples, rate = sf.read(wav)
    return int(np.argmax(np.abs(samples) > 0.1)) / rate


def _square_onset_s(video):
    _, frames = _video_frames(video)
    for t, gray, _ in frames:
        h, w = gray.shape
        if gray[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean() > 128:
            return t
    raise AssertionError("the white square never appears")


@pytest.mark.parametrize(
    ("container", "v_start", "a_start"),
    [
        ("mp4", 0.2, 0.5),  # audio starts 0.3 s after the first frame: padded
        ("mkv", 0.5, 0.1),  # audio starts 0.4 s before the first frame: trimmed
    ],
)
def test_audio_and_video_share_one_time_axis(make_sync_clip, tmp_path, container, v_start, a_start):
    src = make_sync_clip(container, v_start, a_start)
    row, audio, video = _extract(src, tmp_path)
    expected = EVENT_S - v_start  # t = 0 is the source's first video frame
    beep, square = _beep_onset_s(audio), _square_onset_s(video)
    assert abs(beep - square) <= FRAME_S, (beep, square)
    assert beep == pytest.approx(expected, abs=FRAME_S)
    assert square == pytest.approx(expected, abs=FRAME_S)
    # both 2.0 s long; on the output axis the video ends at 2.0 and the audio at 2.0 + offset
    shorter = min(2.0, 2.0 + a_start - v_start)
    assert row["duration_s"] == pytest.approx(shorter, abs=FRAME_S)


@pytest.mark.parametrize("name", GOOD)
def test_outputs_are_normalised(media, tmp_path, name):
    row, audio, video = _extract(media[name], tmp_path)
    # audio: 16 kHz mono PCM16, exactly as long as the video
    meta = sf.info(audio)
    assert (meta.samplerate, meta.channels, meta.subtype) == (16000, 1, "PCM_16")
    assert meta.frames == round(row["n_frames"] * 16000 / CFG.fps)
    # video: H.264 yuv420p, no audio track, constant fps, even bounded size, upright
    with av.open(str(video)) as c:
        assert len(c.streams.audio) == 0
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert "rotate" not in stream.metadata
    stream, frames = _video_frames(video)
    times = np.array([t for t, _, _ in frames])
    assert len(frames) == row["n_frames"] > 0
    np.testing.assert_allclose(np.diff(times), FRAME_S, atol=1e-3)
    assert times[0] == pytest.approx(0.0, abs=1e-3)
    assert all(rot == 0 for _, _, rot in frames)  # no display matrix left
    h, w = frames[0][1].shape
    assert (w, h) == (row["width"], row["height"])
    assert w % 2 == 0 and h % 2 == 0 and max(w, h) <= CFG.max_side
    dw, dh = (
        (row["src_height"], row["src_width"])
        if row["rotation"] in (90, 270)
        else (row["src_width"], row["src_height"])
    )
    assert w / h == pytest.approx(dw / dh, rel=0.03)
    assert row["duration_s"] == pytest.approx(1.2, abs=0.1)


def test_portrait_video_is_rotated_upright(media, tmp_path):
    row, _, video = _extract(media["portrait"], tmp_path)
    assert row["rotation"] == 90
    assert row["height"] > row["width"]
    _, frames = _video_frames(video)
    gray = frames[0][1]
    band = gray[: gray.shape[0] // 6].mean()  # the white band is at the top when upright
    rest = gray[gray.shape[0] // 3 :].mean()
    assert band > 200 and rest < 160, (band, rest)


def test_odd_size_is_made_even_and_bounded(media, tmp_path):
    row, _, _ = _extract(media["odd_big"], tmp_path)
    assert (row["src_width"], row["src_height"]) == (321, 241)
    assert (row["width"], row["height"]) == (320, 240)
    row, _, _ = _extract(media["odd_small"], tmp_path)
    assert row["width"] % 2 == 0 and row["height"] % 2 == 0
    assert abs(row["width"] - 99) <= 1 and abs(row["height"] - 75) <= 1


def test_other_fps_and_rate(media, tmp_path):
    cfg = ExtractConfig(fps=10, sample_rate=8000, max_side=64)
    row, audio, video = _extract(media["vfr"], tmp_path, cfg)
    assert sf.info(audio).samplerate == 8000
    assert sf.info(audio).frames == row["n_frames"] * 800
    stream, frames = _video_frames(video)
    assert float(stream.average_rate) == pytest.approx(10.0)
    np.testing.assert_allclose(np.diff([t for t, _, _ in frames]), 0.1, atol=1e-3)
    assert max(row["width"], row["height"]) <= 64


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((321, 241), 320, (320, 240)),
        ((1920, 1080), 320, (320, 180)),
        ((99, 75), 320, (100, 76)),
        ((1080, 1920), 320, (180, 320)),
        ((640, 480), 33, (32, 24)),
        ((3, 1), 320, (4, 2)),
    ],
)
def test_output_size(size, max_side, expected):
    assert output_size(*size, max_side) == expected


def test_too_low_fps_is_an_error_without_output(media, tmp_path):
    with pytest.raises(ExtractError, match="shorter than one video frame"):
        _extract(media["good"], tmp_path, ExtractConfig(fps=0.5))
    assert not list(tmp_path.iterdir())


def test_ffmpeg_failure_leaves_no_output(media, tmp_path, monkeypatch):
    """A video encode that dies half-way (here: a wrapper that writes junk and exits 1 for the
    video run, the real ffmpeg for the audio run) leaves neither file behind."""
    real = ffmpeg_exe()
    wrapper = tmp_path / "bin" / "ffmpeg-fails"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a; do case "$a" in pipe:) exec "$0.real" "$@";; *.mp4) out="$a";; esac; done\n'
        'echo partial > "$out"; echo "Error: No space left on device" >&2; exit 1\n'
    )
    (tmp_path / "bin" / "ffmpeg-fails.real").symlink_to(real)
    wrapper.chmod(0o755)
    monkeypatch.setenv("AVER_FFMPEG", str(wrapper))
    ffmpeg_exe.cache_clear()
    out = tmp_path / "out"
    try:
        with pytest.raises(ExtractError, match="No space left on device"):
            extract_clip(media["good"], out / "a.wav", out / "v.mp4", CFG)
    finally:
        ffmpeg_exe.cache_clear()
    assert not list(out.iterdir())


@pytest.mark.parametrize(("name", "reason"), [("silent", "no_audio"), ("audio_only", "no_video")])
def test_a_missing_stream_is_refused_by_default(media, tmp_path, name, reason):
    with pytest.raises(MediaError) as err:
        _extract(media[name], tmp_path)
    assert err.value.reason.value == reason
    assert not list(tmp_path.iterdir())


def test_missing_ok_audio_file_gives_the_wav_and_no_video(media, tmp_path):
    audio, video = tmp_path / "out.wav", tmp_path / "out.mp4"
    row = extract_clip(media["audio_only"], audio, video, CFG, missing_ok=True)
    assert row["video"] == "" and row["audio"] == str(audio)
    assert not video.exists()
    samples, rate = sf.read(audio)
    assert rate == CFG.sample_rate and samples.ndim == 1
    assert abs(len(samples) / rate - 1.2) < 0.05  # the whole 1.2 s sine, on its own axis
    assert row["duration_s"] == pytest.approx(len(samples) / rate, abs=1e-6)
    assert row["n_frames"] == 0 and row["width"] == 0 and row["height"] == 0
    assert set(row) == set(MANIFEST_COLUMNS) - {"clip_id"}


def test_missing_ok_silent_video_gives_the_mp4_and_no_wav(media, tmp_path):
    audio, video = tmp_path / "out.wav", tmp_path / "out.mp4"
    row = extract_clip(media["silent"], audio, video, CFG, missing_ok=True)
    assert row["audio"] == "" and row["video"] == str(video)
    assert not audio.exists()
    stream, frames = _video_frames(video)
    assert len(frames) == row["n_frames"] == round(1.2 * CFG.fps)
    assert (stream.width, stream.height) == (row["width"], row["height"])
    assert row["duration_s"] == pytest.approx(row["n_frames"] / CFG.fps)
    assert set(row) == set(MANIFEST_COLUMNS) - {"clip_id"}


def test_missing_ok_still_refuses_a_file_without_media(media, tmp_path):
    with pytest.raises(MediaError) as err:
        extract_clip(media["text"], tmp_path / "a.wav", tmp_path / "v.mp4", CFG, missing_ok=True)
    assert err.value.reason.value == "not_media"

"""probe(): stream facts from real files, and a typed reason for each kind of unusable file."""

from __future__ import annotations

import pytest

from aver.media.probe import MediaError, Unusable, probe
from tests.media.conftest import BAD


def test_streams_and_timing(media):
    info = probe(media["good"])
    assert info.format_name.startswith("mov,mp4")
    assert info.video and info.audio
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 160, 120)
    assert info.video.avg_fps == pytest.approx(25.0)
    assert info.video.n_frames == 30
    assert info.video.rotation == 0
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 44100, 1)
    assert info.video.start_s == pytest.approx(0.0)
    assert info.duration_s == pytest.approx(1.2, abs=0.03)


def test_rotation_from_display_matrix(media):
    info = probe(media["portrait"])
    assert (info.video.width, info.video.height) == (200, 112)  # stored landscape
    assert info.video.rotation == 90
    assert info.video.display_size == (112, 200)


def test_vfr_rates(media):
    info = probe(media["vfr"])
    assert info.video.real_fps == pytest.approx(30.0)
    assert info.video.avg_fps < 25  # a third of the frames were dropped irregularly


@pytest.mark.parametrize("name", sorted(BAD))
def test_unusable_inputs_have_typed_reasons(media, name):
    with pytest.raises(MediaError) as err:
        probe(media[name], min_duration_s=0.5)
    assert err.value.reason == Unusable(BAD[name])
    assert str(media[name]) in str(err.value)  # the message names the file


def test_missing_file(tmp_path):
    with pytest.raises(MediaError) as err:
        probe(tmp_path / "nope.mp4")
    assert err.value.reason is Unusable.MISSING


def test_optional_streams(media):
    assert probe(media["silent"], need_audio=False).audio is None
    assert probe(media["audio_only"], need_video=False).video is None

"""RetinaFace: builds without downloads, loads local weights in several layouts, clear errors."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from aver.config import AlignConfig, DownloadConfig
from aver.errors import ConfigError, DataError, DownloadError
from aver.faces.detectors import make_detector
from aver.faces.retinaface import (
    RetinaFaceDetector,
    build_network,
    load_state_dict,
    resolve_weights,
)
from tests.faces.conftest import moving_face


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A real RetinaFace-ResNet50 state dict with random weights, saved as DataParallel would."""
    torch.manual_seed(0)
    net = build_network()
    path = tmp_path_factory.mktemp("w") / "retinaface.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def test_builds_loads_local_weights_and_runs_on_a_frame(random_weights):
    det = make_detector(
        AlignConfig(detector="retinaface", retinaface_weights=str(random_weights), device="cpu")
    )
    assert isinstance(det, RetinaFaceDetector)
    expected = load_state_dict(random_weights)
    got = det.net.state_dict()
    assert set(got) == set(expected)
    assert torch.equal(got["body.conv1.weight"], expected["body.conv1.weight"])
    frames = [f[:128, :160].copy() for f in moving_face(2)]
    out = det.detect(frames)
    assert len(out) == 2
    for d in out:
        assert d.boxes.shape[1:] == (4,) and d.landmarks.shape[1:] == (5, 2)
        assert len(d.scores) == len(d.boxes) and (d.scores > 0.7).all()


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict"])
def test_state_dict_layouts(tmp_path, wrap):
    sd = {"a.weight": torch.ones(2), "b.bias": torch.zeros(1)}
    if wrap == "module":
        sd = {f"module.{k}": v for k, v in sd.items()}
    obj = {"state_dict": sd} if wrap == "state_dict" else sd
    torch.save(obj, tmp_path / "w.pth")
    assert sorted(load_state_dict(tmp_path / "w.pth")) == ["a.weight", "b.bias"]


def test_unreadable_or_wrong_weights_name_the_file(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(DataError, match=r"garbage\.pth"):
        load_state_dict(bad)
    wrong = tmp_path / "wrong.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), wrong)
    with pytest.raises(DataError, match=r"wrong\.pth.*do not fit"):
        RetinaFaceDetector(wrong)


def test_no_weights_offline_says_where_to_put_them(tmp_path):
    cfg = AlignConfig(detector="retinaface", weights_cache=str(tmp_path / "cache"))
    with pytest.raises(ConfigError) as err:
        make_detector(cfg)
    msg = str(err.value)
    assert str(tmp_path / "cache" / "retinaface_resnet50.pth") in msg
    assert "align.retinaface_weights" in msg and "align.retinaface_url" in msg

    missing = AlignConfig(detector="retinaface", retinaface_weights=str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match=r"nope\.pth.*not found"):
        resolve_weights(missing)

    # a file placed at the advertised path is picked up without any parameter
    (tmp_path / "cache").mkdir()
    torch.save({"x": torch.zeros(1)}, tmp_path / "cache" / "retinaface_resnet50.pth")
    assert resolve_weights(cfg) == tmp_path / "cache" / "retinaface_resnet50.pth"


def test_unreachable_url_names_the_cache_path(tmp_path):
    pytest.importorskip("aver.io.http")
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = AlignConfig(
        detector="retinaface",
        weights_cache=str(tmp_path),
        retinaface_url=f"http://127.0.0.1:{port}/retinaface.pth",
        retinaface_sha256="0" * 64,
    )
    with pytest.raises(DownloadError) as err:
        resolve_weights(cfg, DownloadConfig(retries=0))
    assert str(tmp_path / "retinaface.pth") in str(err.value)
    assert not (tmp_path / "retinaface.pth").exists()


def test_url_without_sha256_is_pinned_beside_the_cache(tmp_path):
    import hashlib
    import json

    from tests.support.http_server import FileServer

    torch.save({"x": torch.zeros(1)}, tmp_path / "w.pth")
    data = (tmp_path / "w.pth").read_bytes()
    cache = tmp_path / "cache"
    dl = DownloadConfig(backoff_s=0, retries=0)
    with FileServer({"/w.pth": data}) as srv:
        cfg = AlignConfig(
            detector="retinaface", weights_cache=str(cache), retinaface_url=srv.url("/w.pth")
        )
        assert resolve_weights(cfg, dl) == cache / "w.pth"
        pins = json.loads((cache / "downloads.lock.json").read_text())["files"]
        assert pins[srv.url("/w.pth")]["sha256"] == hashlib.sha256(data).hexdigest()

        srv.add("/w.pth", data[::-1])  # changed upstream; the cached copy is gone
        (cache / "w.pth").unlink()
        with pytest.raises(DownloadError, match="its pin in"):
            resolve_weights(cfg, dl)
        assert not (cache / "w.pth").exists()


def test_zipped_release_format(tmp_path):
    import zipfile

    torch.save({"k": torch.arange(3)}, tmp_path / "inner.pth")
    with zipfile.ZipFile(tmp_path / "release.zip", "w") as zf:
        zf.write(tmp_path / "inner.pth", "retinaface.pth")
    assert np.array_equal(load_state_dict(tmp_path / "release.zip")["k"].numpy(), [0, 1, 2])

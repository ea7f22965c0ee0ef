"""`aver export`: every registered model, on both input kinds, exported as ONNX and TorchScript
gives PyTorch's logits and probabilities (within 1e-4) on batches of 1 and 3 clips with padding,
at lengths other than the traced one; input_spec.json describes the file; bad input is a clear
error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aver.cli import main as cli_main
from aver.config import parse_params
from aver.errors import ConfigError
from aver.export import FORMATS, INPUT_NAMES, SPEC_FILE, export_model
from aver.features.stats import FoldStats
from aver.inference import class_probabilities, load_trained_model
from aver.model_card import card_from_params
from aver.models import MODEL_CONFIGS, build_model
from aver.training import checkpoints
from tests.models.conftest import INPUTS, SMALL, make_batch

CLASSES = ["angry", "happy", "neutral"]
KINDS = ("features+crops", "layers+embeddings")
AUDIO_FRAMES, VIDEO_FRAMES = 24, 4  # the window the card records (the traced length)
TOL = 1e-4


def write_model(path, name: str, kind: str, stats: FoldStats | None = None):
    """model.pt of a randomly initialised small `name` model on input kind `kind`."""
    dims = INPUTS[kind]
    model = {
        k: v for k, v in {**SMALL, "name": name}.items() if k in MODEL_CONFIGS[name][0].model_fields
    }
    params = parse_params({"train": {"model": model}}, "test")
    torch.manual_seed(0)
    net = build_model(params.train.model, n_classes=len(CLASSES), **dims.kwargs())
    card = card_from_params(
        params,
        classes=CLASSES,
        dims=dims.kwargs(),
        stats=None if stats is None else stats.to_dict(),
        cache_meta={
            "audio": {"n_frames": AUDIO_FRAMES},
            "video": {"n_frames": VIDEO_FRAMES},
            "config": params.cache.model_dump(mode="json"),
        },
    )
    checkpoints.save_model_file(path, net.state_dict(), card)
    return path


def runner(fmt: str, path):
    """batch -> (logits, probabilities) as numpy, from the exported file."""
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        return lambda b: sess.run(None, {k: b[k].numpy() for k in names})
    module = torch.jit.load(str(path))

    @torch.no_grad()
    def run(b):
        return [t.numpy() for t in module(*(b[k] for k in INPUT_NAMES))]

    return run


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_export_gives_pytorchs_outputs(tmp_path, name, kind, fmt):
    model_file = write_model(tmp_path / "model.pt", name, kind)
    path = export_model(str(model_file), fmt, tmp_path / "out", "absent.yaml")
    assert path == tmp_path / "out" / FORMATS[fmt] and path.is_file()
    run = runner(fmt, path)
    model = load_trained_model(model_file).model
    dims = INPUTS[kind]
    # batch sizes 1 and 3, padding, lengths other than the traced window (odd ones too), and
    # clips without a face (no real video frame: the missing-modality case)
    cases = (([AUDIO_FRAMES + 7], [VIDEO_FRAMES + 2]), ([30, 17, 9], [6, 3, 1]), ([20, 13], []))
    for audio, video in cases:
        batch = make_batch(audio, video or [2] * len(audio), seed=len(audio), dims=dims)
        batch["video_mask"] &= bool(video)
        with torch.no_grad():
            logits = model(batch).logits
        got_logits, got_probs = run(batch)
        assert got_logits.shape == got_probs.shape == (len(audio), len(CLASSES))
        np.testing.assert_allclose(got_logits, logits.numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(got_probs, torch.softmax(logits, -1).numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(got_probs.sum(1), 1.0, atol=1e-5)


def test_input_spec_describes_the_file(tmp_path, capsys):
    model_file = write_model(tmp_path / "model.pt", "msan", "features+crops")
    cli_main(["export", "--model", str(model_file), "--format", "onnx", "--out", str(tmp_path)])
    assert capsys.readouterr().out.split() == [
        str(tmp_path / "model.onnx"),
        str(tmp_path / SPEC_FILE),
    ]
    spec = json.loads((tmp_path / SPEC_FILE).read_text())
    card = load_trained_model(model_file).card
    assert spec["format"] == "onnx" and spec["file"] == "model.onnx"
    assert spec["classes"] == CLASSES and spec["input_spec"] == card.input.model_dump()
    inputs = {i["name"]: i for i in spec["inputs"]}
    assert list(inputs) == list(INPUT_NAMES)
    assert inputs["audio"]["shape"] == ["batch", "audio_frames", INPUTS["features+crops"].audio_dim]
    assert inputs["video"]["shape"] == ["batch", "video_frames", 3, 16, 16]
    assert inputs["video_mask"] == {
        "name": "video_mask",
        "dtype": "bool",
        "shape": ["batch", "video_frames"],
    }
    assert [o["name"] for o in spec["outputs"]] == ["logits", "probabilities"]
    assert spec["outputs"][1]["softmax"] is True
    assert spec["normalisation"]["stats"] == card.stats
    assert spec["versions"]["opset"] and spec["versions"]["torch"] == torch.__version__
    assert not list(tmp_path.glob(".*.tmp*"))  # no temp files left


def test_the_readme_recipe_gives_aver_predicts_probabilities(tmp_path):
    """Cache-format arrays (uint8 crops), normalised by the spec's stats through
    batch_from_arrays, fed to onnxruntime by the session's input names (README "Export")."""
    import onnxruntime as ort

    from aver.features import batch_from_arrays

    rng = np.random.default_rng(0)
    dim = INPUTS["features+crops"].audio_dim
    stats = FoldStats(
        rng.normal(size=dim).astype(np.float32), rng.uniform(0.5, 2, dim).astype(np.float32),
        np.float32([0.5, 0.4, 0.3]), np.float32([0.2, 0.25, 0.3]), n_clips=4,
    )  # fmt: skip
    model_file = write_model(tmp_path / "model.pt", "avtca", "features+crops", stats)
    export_model(str(model_file), "onnx", tmp_path, "absent.yaml")
    spec = json.loads((tmp_path / SPEC_FILE).read_text())
    clips = [
        {
            "audio": rng.normal(size=(AUDIO_FRAMES, dim)).astype(np.float32),
            "audio_mask": np.arange(AUDIO_FRAMES) < AUDIO_FRAMES - 3 * i,
            "audio_times": ((np.arange(AUDIO_FRAMES) + 0.5) / 12).astype(np.float32),
            "video": rng.integers(0, 256, size=(VIDEO_FRAMES, 16, 16, 3), dtype=np.uint8),
            "video_mask": np.arange(VIDEO_FRAMES) < VIDEO_FRAMES - i,
            "video_times": ((np.arange(VIDEO_FRAMES) + 0.5) / 2).astype(np.float32),
        }
        for i in range(2)
    ]
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = batch_from_arrays(clips, FoldStats.from_dict(spec["normalisation"]["stats"]))
    _, probs = sess.run(None, {i.name: batch[i.name].numpy() for i in sess.get_inputs()})
    want = class_probabilities(load_trained_model(model_file).model, clips, stats)
    np.testing.assert_allclose(probs, want, atol=TOL, rtol=0)


def test_a_unimodal_onnx_graph_lists_only_its_inputs(tmp_path):
    model_file = write_model(tmp_path / "model.pt", "audio_only", "features+crops")
    export_model(str(model_file), "onnx", tmp_path, "absent.yaml")
    spec = json.loads((tmp_path / SPEC_FILE).read_text())
    assert [i["name"] for i in spec["inputs"]] == ["audio", "audio_mask", "audio_times"]


def test_bad_format_names_the_valid_ones(tmp_path, capsys):
    model_file = write_model(tmp_path / "model.pt", "audio_only", "features+crops")
    with pytest.raises(ConfigError, match="--format onnx or --format torchscript"):
        export_model(str(model_file), "tflite", tmp_path / "out", "absent.yaml")
    with pytest.raises(SystemExit) as exc:
        cli_main(["export", "--model", str(model_file), "--format", "tflite", "--out", "x"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "aver export: error: unknown export format 'tflite'" in err and "Fix:" in err
    assert not (tmp_path / "out").exists()


def test_missing_model_file_names_the_fix(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["export", "--model", str(tmp_path / "absent.pt"), "--format", "onnx",
                  "--out", str(tmp_path / "out")])  # fmt: skip
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'absent.pt'}: model file not found" in err
    assert "models:/aver-demo@champion" in err
    assert not (tmp_path / "out").exists()

"""`aver export`: a trained network as ONNX or TorchScript, with the spec of its inputs.

Only the network is exported; feature extraction (decode, faces, log-mel or encoders) and the
normalisation stay in Python (`aver predict`'s pipeline) and the caller applies them. The graph
takes the "Model batch" tensors (docs/data-contracts.md) as named inputs and returns `logits`
(B, C) and `probabilities` (B, C), the softmax of the logits computed in the graph. Batch size
and both time axes are dynamic. Both formats are traced (`torch.jit.trace`; ONNX through the
TorchScript-based exporter), so an ONNX graph lists only the inputs its model reads (a unimodal
model takes its own modality's three; AVT-CA, which has no positions, takes no times);
`input_spec.json` lists the file's inputs with dtypes and shapes (dynamic axes by name), the
classes, the model card's input spec and normalisation stats, and the opset / torch versions.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import aver
from aver.errors import AverError, ConfigError
from aver.features.window import ARRAYS
from aver.io.atomic import atomic_path, write_json

if TYPE_CHECKING:
    from aver.model_card import ModelCard

log = logging.getLogger("aver.export")

INPUT_NAMES = ARRAYS  # the model batch tensors, in their order
OUTPUT_NAMES = ("logits", "probabilities")
FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}  # format -> file name
OPSET = 18
SPEC_FILE = "input_spec.json"
TIME_AXIS = {"audio": "audio_frames", "video": "video_frames"}
# example window length when the card does not record one (v1 model files)
DEFAULT_FRAMES = {"audio": 200, "video": 10}
NORMALISATION = {
    "audio": "(x - stats.audio_mean) / stats.audio_std, per feature bin (or per encoder layer "
    "and dim), on real frames; padding is masked",
    "video_crops": "RGB uint8 crops (T, S, S, 3) -> (x / 255 - stats.video_mean) / "
    "stats.video_std per channel, transposed to (T, 3, S, S)",
    "video_embeddings": "(x - stats.video_mean) / stats.video_std, per dim",
}


class ExportedNetwork(nn.Module):
    """A model on the batch tensors as positional inputs -> (logits, softmax probabilities)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self,
        audio: torch.Tensor,
        audio_mask: torch.Tensor,
        audio_times: torch.Tensor,
        video: torch.Tensor,
        video_mask: torch.Tensor,
        video_times: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tensors = (audio, audio_mask, audio_times, video, video_mask, video_times)
        logits = self.model(dict(zip(INPUT_NAMES, tensors, strict=True))).logits.float()
        return logits, torch.softmax(logits, dim=-1)


def check_format(fmt: str) -> str:
    """`fmt` if it is an export format, else a ConfigError naming the valid ones."""
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown export format {fmt!r}",
            fix=f"pass --format {' or --format '.join(FORMATS)}",
        )
    return fmt


def frame_shapes(card: ModelCard) -> dict[str, tuple[int, ...]]:
    """The fixed trailing shape of one audio and one video frame, from the card's dims."""
    i = card.input
    audio = (i.audio_layers, i.audio_dim) if i.audio_layers else (i.audio_dim,)
    video = (i.video_dim,) if i.video_dim else (3, i.face_size, i.face_size)
    return {"audio": audio, "video": video}


def example_batch(card: ModelCard, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random model batch of the card's window (the last clip shorter) to trace with."""
    g = torch.Generator().manual_seed(seed)
    frames = frame_shapes(card)
    out: dict[str, torch.Tensor] = {}
    for m in ("audio", "video"):
        n = getattr(card.input, f"{m}_frames") or DEFAULT_FRAMES[m]
        n = max(int(n), 4)
        rate = n / card.input.window_s
        lengths = torch.full((batch,), n)
        lengths[-1] = max(n - n // 4, 2)
        out[m] = torch.randn(batch, n, *frames[m], generator=g)
        out[f"{m}_mask"] = torch.arange(n)[None, :] < lengths[:, None]
        out[f"{m}_times"] = ((torch.arange(n) + 0.5) / rate).expand(batch, -1).clone()
    return out


def trace(model: nn.Module, example: dict[str, torch.Tensor]) -> torch.jit.ScriptModule:
    """`model` (eval, CPU) traced on `example` into a TorchScript module of ExportedNetwork."""
    net = ExportedNetwork(model).eval()
    args = tuple(example[k] for k in INPUT_NAMES)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced: torch.jit.ScriptModule = torch.jit.trace(net, args, check_trace=False)
    return traced


def write_torchscript(model: nn.Module, example: dict[str, torch.Tensor], path: Path) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        trace(model, example).save(str(tmp))


def write_onnx(model: nn.Module, example: dict[str, torch.Tensor], path: Path) -> list[str]:
    """Write the ONNX graph; returns the names of the inputs it kept (those the model reads)."""
    import onnx

    net = ExportedNetwork(model).eval()
    args = tuple(example[k] for k in INPUT_NAMES)
    axes = {k: {0: "batch", 1: TIME_AXIS[k.split("_")[0]]} for k in INPUT_NAMES}
    axes.update({k: {0: "batch"} for k in OUTPUT_NAMES})
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's and the exporter's deprecation notes
        torch.onnx.export(
            net,
            args,
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
        kept = [i.name for i in onnx.load(str(tmp)).graph.input]
    return kept


def input_spec(card: ModelCard, fmt: str, inputs: list[str]) -> dict[str, Any]:
    """What a caller of the exported file needs: inputs, outputs, classes, normalisation."""
    frames = frame_shapes(card)
    dtypes = {"": "float32", "_mask": "bool", "_times": "float32"}
    specs = []
    for name in inputs:
        m, _, kind = name.partition("_")
        tail = frames[m] if not kind else ()
        specs.append(
            {
                "name": name,
                "dtype": dtypes[f"_{kind}" if kind else ""],
                "shape": ["batch", TIME_AXIS[m], *tail],
            }
        )
    n = len(card.classes)
    video_kind = "video_embeddings" if card.input.video_dim else "video_crops"
    return {
        "format": fmt,
        "file": FORMATS[fmt],
        "inputs": specs,
        "outputs": [
            {"name": "logits", "dtype": "float32", "shape": ["batch", n]},
            {"name": "probabilities", "dtype": "float32", "shape": ["batch", n], "softmax": True},
        ],
        "dynamic_axes": ["batch", "audio_frames", "video_frames"],
        "masks": "True where a frame is real; padded frames never change a clip's output",
        "times": "seconds of each frame's centre within the window",
        "classes": list(card.classes),
        "model": card.model,
        "input_spec": card.input.model_dump(),
        "features": card.features,
        "normalisation": {
            "audio": NORMALISATION["audio"],
            "video": NORMALISATION[video_kind],
            "stats": card.stats,
        },
        "notes": [
            "feature extraction and normalisation are not in the graph: compute them as "
            "aver predict does (aver.inference.window_arrays, aver.features.batch_from_arrays)",
            "the model was trained on windows of input_spec.audio_frames / video_frames; other "
            "lengths run (at least 2 audio frames) but were not seen in training",
            "a clip with no real frame of a modality (its mask all False: no face found) gets "
            "what PyTorch gives it; whether the model was trained for that is "
            "input_spec.modality_dropout",
        ],
        "versions": {
            "opset": OPSET if fmt == "onnx" else None,
            "torch": torch.__version__,
            "aver": aver.__version__,
        },
    }


def export_model(spec: str | None, fmt: str, out: str | Path, params: str | Path) -> Path:
    """Export the model `spec` names (model.pt path or MLflow URI) as `fmt` into `out`; returns
    the network's path. input_spec.json is written after the network, both atomically."""
    from aver.predict.model import DEFAULT_MODEL, is_model_uri, load_model, tracking_config

    check_format(fmt)
    spec = spec or DEFAULT_MODEL
    trained = load_model(spec, tracking_config(params) if is_model_uri(spec) else None)
    model = trained.model.to("cpu").eval()
    example = example_batch(trained.card)
    path = Path(out) / FORMATS[fmt]
    if fmt == "onnx":
        inputs = write_onnx(model, example, path)
    else:
        write_torchscript(model, example, path)
        inputs = list(INPUT_NAMES)
    write_json(Path(out) / SPEC_FILE, input_spec(trained.card, fmt, inputs))
    return path


def main(args: argparse.Namespace) -> None:
    """`aver export`: the written paths on stdout, errors on stderr (exit 1)."""
    from aver.predict import one_line

    logging.basicConfig(level=logging.INFO, format="[export] %(message)s", stream=sys.stderr)
    try:
        path = export_model(args.model, args.format, args.out, args.params)
    except AverError as err:
        print(f"aver export: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    print(path)
    print(path.parent / SPEC_FILE)

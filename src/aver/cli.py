"""The `aver` console script: run pipeline stages and predict emotions on a new video."""

from __future__ import annotations

import argparse
import importlib
import sys

# The pipeline's stages, in dvc.yaml order: name -> (module with run(params), one-line help).
# The one stage list: dvc.yaml, stages/<name>.py and the tests are checked against it.
STAGES = {
    "download": ("aver.datasets.download", "fetch or generate the dataset (data/raw)"),
    "extract": ("aver.media.pipeline", "audio to 16 kHz WAV, video to constant-fps MP4"),
    "align": ("aver.faces.pipeline", "detect, track and align faces into shards"),
    "cache": ("aver.features.pipeline", "features into a memory-mappable cache"),
    "tune": ("aver.tuning.pipeline", "Ray Tune hyperparameter search"),
    "train": ("aver.training.pipeline", "train on the protocol's folds (MLflow-tracked)"),
    "evaluate": ("aver.evaluation.pipeline", "test metrics, confusion matrix, plots"),
}


def _add_predict(sub: argparse._SubParsersAction) -> None:
    """`aver predict VIDEO... [options]`."""
    p = sub.add_parser("predict", help="emotion probabilities for new videos")
    p.add_argument(
        "video",
        nargs="*",
        metavar="VIDEO",
        help="video files (mp4, flv, avi, mkv, ...) or directories of them; several files: "
        "one row per file",
    )
    p.add_argument(
        "--output",
        default=None,
        help="write one row per file to results.csv or results.jsonl (path, label, "
        "probabilities, windows, modalities, notes, error)",
    )
    p.add_argument(
        "--recursive", action="store_true", help="search directories' subdirectories too"
    )
    p.add_argument(
        "--model",
        default=None,
        help="models/model.pt (default), a file path, or an MLflow URI "
        "such as models:/aver-demo@champion",
    )
    p.add_argument(
        "--card", action="store_true", help="print the model's card (MODEL_CARD.md) and exit"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--timeline", default=None, help="write a per-second emotion plot (PNG)")
    p.add_argument(
        "--encoder-weights",
        default=None,
        help="pretrained encoder weights (file or directory) for a model trained on them "
        "(default: where training found them, else the torch hub cache)",
    )
    p.add_argument("--params", default="params.yaml")
    p.add_argument(
        "--profile", action="store_true", help="print seconds per step on stderr (JSON line)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aver",
        description="Audio-visual emotion recognition pipeline. Stages normally run through "
        "`dvc repro`; each can also be run alone here.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in STAGES.items():
        p = sub.add_parser(name, help=f"stage: {help_text}")
        p.add_argument("--params", default="params.yaml")
    _add_predict(sub)
    p = sub.add_parser(
        "export", help="the trained network as ONNX or TorchScript, with input_spec.json"
    )
    p.add_argument(
        "--model",
        default=None,
        help="models/model.pt (default), a file path, or an MLflow URI "
        "such as models:/aver-demo@champion",
    )
    p.add_argument("--format", required=True, help="onnx or torchscript")
    p.add_argument("--out", required=True, help="directory for the network and input_spec.json")
    p.add_argument("--params", default="params.yaml", help="tracking settings for a URI")
    return parser


def main(argv: list[str] | None = None) -> None:
    if argv is None:  # the console script: run the code of the workspace it is started in
        from aver.workspace import run_own_code

        run_own_code(sys.argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(0)
    if args.command in STAGES:
        from aver.stage import main as stage_main

        module = importlib.import_module(STAGES[args.command][0])
        stage_main(args.command, module.run, ["--params", args.params])
        return
    if args.command == "export":
        from aver.export import main as export_main

        export_main(args)
        return
    if args.card:
        from aver.show_card import main as card_main

        card_main(args)
        return
    if not args.video:
        parser.error("predict: a video is required (or --card to print the model's card)")
    from aver.predict.early import start_early

    early = start_early(args)  # ffmpeg works on another core while torch is imported below
    from aver.predict.command import main as predict_main
    from aver.predict.command import main_and_exit

    if argv is None:  # a process of its own: exit without tearing torch down (about 1 s)
        main_and_exit(args, early)
    predict_main(args, early)


if __name__ == "__main__":
    main()

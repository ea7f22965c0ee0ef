"""`aver predict --model PATH|URI --card`: print the model's MODEL_CARD.md and exit.

A registered version (`models:/NAME@ALIAS`, `models:/NAME/VERSION`): the MODEL_CARD.md the
train and evaluate stages logged for it (aver.tracking.card_doc). A model file, or another
MLflow URI (`runs:/<id>/model`): rendered from the card inside model.pt and the validation
metrics it stores (test metrics live in the registry's card and reports/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from aver.config import TrackingConfig, load_params
from aver.errors import AverError, DataError
from aver.predict import DEFAULT_MODEL, download_model, is_model_uri, one_line
from aver.tracking import card_doc, registry
from aver.training.checkpoints import read_model_file


def card_text(spec: str | None, tracking: TrackingConfig) -> str:
    """The card of `spec` (a model.pt path, default models/model.pt, or an MLflow URI)."""
    spec = spec or DEFAULT_MODEL
    if not is_model_uri(spec):
        path = Path(spec)
        if not path.is_file():
            raise DataError(
                "model file not found",
                path=path,
                fix="pass --model PATH|models:/NAME@champion (or run the pipeline: dvc repro)",
            )
        return _render_file(path)
    if spec.startswith("models:/") and ("@" in spec or spec.rstrip("/")[-1].isdigit()):
        from aver.tracking.runs import absolute_uri, connect, tracking_uri, use_store

        use_store(connect(absolute_uri(tracking_uri(tracking))))
        return registry.model_card_text(spec)
    with tempfile.TemporaryDirectory(prefix="aver-card-") as tmp:
        return _render_file(download_model(spec, tracking, Path(tmp)))


def _render_file(path: Path) -> str:
    return card_doc.render(card_doc.CardInputs(card=read_model_file(path).card))


def main(args: argparse.Namespace) -> None:
    """Print the card on stdout; errors on stderr with exit code 1."""
    try:
        params = Path(args.params)
        tracking = load_params(params).tracking if params.is_file() else TrackingConfig()
        text = card_text(args.model, tracking)
    except AverError as err:
        print(f"aver predict: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    print(text, end="")

"""The trained model as an MLflow pyfunc, logged as code (no pickled objects).

The logged model holds `artifacts/model.pt` (weights + model card (aver.model_card), read with
`torch.load(weights_only=True)`) and `pyfunc_entry.py`, which builds `AverPyfunc`. Loading it
needs the `aver` package importable (pip install -e .). Input: a dict of arrays in the model
batch format (docs/data-contracts.md, without label/clip_id); output: class probabilities (B, C).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

ENTRY = Path(__file__).with_name("pyfunc_entry.py")
INPUT_KEYS = ("audio", "audio_mask", "audio_times", "video", "video_mask", "video_times")
ARTIFACT_NAME = "model"


class AverPyfunc(PythonModel):
    """Wraps aver.inference.load_trained_model and probabilities for MLflow."""

    def load_context(self, context):
        from aver.inference import load_trained_model

        self.trained = load_trained_model(context.artifacts["model"])

    def predict(self, context, model_input, params=None):
        import torch

        from aver.inference import probabilities

        batch = {k: torch.as_tensor(np.asarray(model_input[k])) for k in INPUT_KEYS}
        return probabilities(self.trained.model, batch)


def input_example(batch: dict[str, Any], n: int = 1) -> dict[str, np.ndarray]:
    """The first `n` clips of a model batch as numpy arrays (the pyfunc's input format)."""
    return {k: batch[k][:n].detach().cpu().numpy() for k in INPUT_KEYS}


def log_pyfunc(
    model_file: str | Path,
    example: dict[str, np.ndarray],
    probs: np.ndarray,
    *,
    registered_model_name: str | None = None,
    tags: dict[str, Any] | None = None,
) -> Any:
    """Log model.pt as a code-based pyfunc in the active run; returns mlflow's ModelInfo."""
    import pydantic
    import torch
    import yaml

    signature = infer_signature(example, probs)
    reqs = [
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pydantic=={pydantic.VERSION}",
        f"pyyaml=={yaml.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]
    return mlflow.pyfunc.log_model(
        name=ARTIFACT_NAME,
        python_model=str(ENTRY),
        artifacts={"model": str(model_file)},
        signature=signature,
        input_example=example,
        pip_requirements=reqs,
        registered_model_name=registered_model_name,
        tags={k: str(v) for k, v in (tags or {}).items()} or None,
    )

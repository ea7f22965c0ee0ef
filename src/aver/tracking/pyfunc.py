"""The trained model as an MLflow pyfunc, logged as code (no pickled objects).

The logged model holds `artifacts/model.pt` (weights + model card (aver.model_card), read with
`torch.load(weights_only=True)`) and `pyfunc_entry.py`, which builds `AverPyfunc`. Loading it
needs the `aver` package importable (pip install -e .). One model takes two kinds of input,
told apart by their keys (columns):

- a model batch: `audio`, `audio_mask`, `audio_times`, `video`, `video_mask`, `video_times`
  (docs/data-contracts.md, without label/clip_id), batch-first; output: class probabilities
  (B, C) float32;
- videos (aver.tracking.video_request): rows with `video_path` or `video_b64` (+ `filename`);
  each goes through `aver.predict` (extract, align, features with the model card's settings,
  the whole-clip prediction and the timeline); output: one `Prediction.to_json()` per row.

MLflow's tensor signatures make every named tensor required, so the signature is column-based:
every key optional, the batch arrays of type Any (MLflow hands them over as one row per clip)
and the video fields strings. Bad input raises MlflowException(INVALID_PARAMETER_VALUE) with the
aver message: `mlflow models serve` answers it as HTTP 400 without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

from aver.features.window import ARRAYS

ENTRY = Path(__file__).with_name("pyfunc_entry.py")
INPUT_KEYS = ARRAYS  # the model batch tensors (docs/data-contracts.md)
ARTIFACT_NAME = "model"
PARAMS_FILE = "params.yaml"  # read only for model files without stored stats (aver.predict)


class AverPyfunc(PythonModel):
    """Wraps aver.inference (model batches) and aver.predict (videos) for MLflow."""

    def load_context(self, context):
        from aver.inference import load_trained_model
        from aver.tracking.video_request import DEFAULT_MAX_VIDEO_MB

        self.trained = load_trained_model(context.artifacts["model"])
        config = getattr(context, "model_config", None) or {}
        self.max_video_mb = float(config.get("max_video_mb", DEFAULT_MAX_VIDEO_MB))
        self._settings = None  # aver.predict.InputSettings, made on the first video

    def predict(self, context, model_input, params=None):
        from aver.errors import AverError
        from aver.tracking.video_request import is_video_request

        keys = _keys(model_input)
        try:
            if is_video_request(keys):
                return self.predict_videos(_records(model_input))
            return self.predict_batch(model_input)
        except AverError as err:
            raise _request_error(err) from None

    def predict_batch(self, model_input: Any) -> np.ndarray:
        """(B, C) probabilities of a model batch (a dict of arrays or one row per clip)."""
        import torch

        from aver.errors import DataError
        from aver.inference import probabilities

        keys = _keys(model_input)
        missing = [k for k in INPUT_KEYS if k not in keys]
        if missing:
            raise DataError(
                f"the input has neither video_path/video_b64 nor the model batch keys "
                f"(missing {', '.join(missing)}; got {', '.join(map(str, keys)) or 'none'})",
                fix="send videos as rows with video_path or video_b64, or a model batch with "
                f"all of {', '.join(INPUT_KEYS)}",
            )
        batch = {k: torch.as_tensor(_array(model_input, k)) for k in INPUT_KEYS}
        return probabilities(self.trained.model, batch)

    def predict_videos(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One `Prediction.to_json()` (with the timeline) per video request row."""
        from aver.errors import AverError, DataError
        from aver.predict import input_settings, predict_video
        from aver.tracking.video_request import parse_requests, video_file

        requests = parse_requests(rows)
        if self._settings is None:
            self._settings = input_settings(self.trained, PARAMS_FILE)
        out = []
        for req in requests:
            with video_file(req, self.max_video_mb) as path:
                try:
                    pred = predict_video(
                        path, self.trained, self._settings, timeline=True, model_name="pyfunc"
                    )
                except AverError as err:
                    if req.path is not None:
                        raise
                    # name the upload, not its temporary file
                    raise DataError(
                        _without_fix(err).replace(str(path), req.name), fix=err.fix
                    ) from None
            doc = pred.to_json()
            doc["video"] = req.name
            out.append(doc)
        return out


def _keys(model_input: Any) -> list[str]:
    if hasattr(model_input, "columns"):
        return [str(c) for c in model_input.columns]
    if isinstance(model_input, dict):
        return [str(k) for k in model_input]
    return []


def _records(model_input: Any) -> list[dict[str, Any]]:
    """Rows of a DataFrame, or of a dict of scalars / equal-length lists."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        return model_input.to_dict(orient="records")
    frame = pd.DataFrame([model_input]) if _scalars(model_input) else pd.DataFrame(model_input)
    return frame.to_dict(orient="records")


def _scalars(values: dict[str, Any]) -> bool:
    return all(np.ndim(v) == 0 for v in values.values())


def _array(model_input: Any, key: str) -> np.ndarray:
    """One batch entry as numpy: masks bool, everything else float32 (the model batch)."""
    value = model_input[key]
    if hasattr(value, "tolist") and not isinstance(value, np.ndarray):  # a column: 1 row/clip
        value = np.stack([np.asarray(v) for v in value])
    return np.asarray(value, dtype=bool if key.endswith("_mask") else np.float32)


def _without_fix(err: Exception) -> str:
    return str(err).split("\nFix:")[0]


def _request_error(err: Exception) -> Exception:
    """An aver error as the MLflow error the scoring server answers with HTTP 400."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    from aver.errors import AverError
    from aver.predict import one_line

    assert isinstance(err, AverError)
    return MlflowException(one_line(err), error_code=INVALID_PARAMETER_VALUE)


def signature(probs: np.ndarray) -> Any:
    """Inputs: the batch keys (Any) and video fields (string), all optional; outputs: the
    batch's probabilities (`probs`, (B, C)); video rows get prediction documents instead."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Schema, TensorSpec

    from aver.tracking.video_request import COLUMNS

    cols: list[ColSpec | TensorSpec] = [ColSpec(AnyType(), k, required=False) for k in INPUT_KEYS]
    cols += [ColSpec(DataType.string, k, required=False) for k in COLUMNS]
    return ModelSignature(inputs=Schema(cols), outputs=infer_signature(probs).inputs)


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
    """Log model.pt as a code-based pyfunc in the active run; returns mlflow's ModelInfo.
    `probs`: the model's probabilities on `example` (the output signature)."""
    import pydantic
    import torch
    import yaml

    from aver.tracking.video_request import DEFAULT_MAX_VIDEO_MB

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
        signature=signature(probs),
        input_example=example,
        pip_requirements=reqs,
        model_config={"max_video_mb": DEFAULT_MAX_VIDEO_MB},
        registered_model_name=registered_model_name,
        tags={k: str(v) for k, v in (tags or {}).items()} or None,
    )

"""Search space from params.yaml (`tune.space`: dotted params key -> distribution)."""

from __future__ import annotations

from typing import Any

from ray import tune

from aver.config import SearchParam
from aver.errors import ConfigError


def build_space(space: dict[str, SearchParam]) -> dict[str, Any]:
    """Map `tune.space` entries to Ray Tune domains, keyed by the dotted params key."""
    out: dict[str, Any] = {}
    for key, spec in space.items():
        where = f"tune.space.{key}"
        if spec.type == "choice":
            if not spec.values:
                raise ConfigError(
                    f"{where}: 'choice' needs a non-empty 'values' list", fix="edit params.yaml"
                )
            out[key] = tune.choice(list(spec.values))
            continue
        if spec.low is None or spec.high is None or not spec.low < spec.high:
            raise ConfigError(f"{where}: '{spec.type}' needs low < high", fix="edit params.yaml")
        if spec.type == "loguniform":
            if spec.low <= 0:
                raise ConfigError(f"{where}: loguniform needs low > 0", fix="edit params.yaml")
            out[key] = tune.loguniform(spec.low, spec.high)
        elif spec.type == "uniform":
            out[key] = tune.uniform(spec.low, spec.high)
        else:  # randint: inclusive bounds, as written in params.yaml
            out[key] = tune.randint(int(spec.low), int(spec.high) + 1)
    return out


def plain(value: Any) -> Any:
    """Numpy scalars -> Python scalars (for YAML/MLflow)."""
    return value.item() if hasattr(value, "item") else value

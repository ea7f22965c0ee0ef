"""One config resolution for every stage: params.yaml -> preset -> tuned values -> overrides.

Precedence, lowest to highest:
  1. the section defaults (aver.config) and the keys written in params.yaml
  2. the preset named by `train.preset` (aver.training.presets): it sets exactly the keys it
     lists, over params.yaml (so `dvc exp run -S train.preset=avtca_paper` runs it as published)
  3. tuned values from `train.tuned_params` (reports/tune/best_params.yaml) when
     `train.use_tuned` and the caller asks for them (`tuned=True`; the tune stage does not: the
     tuned values are its output)
  4. per-experiment overrides (dotted keys, e.g. {"train.lr": 3e-4})

To change one of a preset's keys, copy the preset's values into params.yaml and drop the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aver.config import Params, TrainConfig, with_overrides
from aver.errors import ConfigError
from aver.training.presets import PRESETS


def preset_values(train: TrainConfig) -> dict[str, Any]:
    """The preset's values (dotted keys relative to train); empty without a preset."""
    if train.preset in (None, "none"):
        return {}
    return dict(PRESETS[train.preset])  # the name was validated against PRESETS


@dataclass(frozen=True)
class Resolved:
    """The params a stage runs with, and what the preset/tuned/override layers changed.

    `applied` keys are prefixed by their layer: "preset.lr", "tuned.train.lr", "override.train.lr".
    """

    params: Params
    applied: dict[str, Any] = field(default_factory=dict)


def resolve(
    params: Params,
    root: str | Path = ".",
    *,
    tuned: bool = True,
    overrides: dict[str, Any] | None = None,
) -> Resolved:
    """Apply the preset, then (if `tuned` and train.use_tuned) tuned values, then `overrides`.

    `root` is the directory train.tuned_params is relative to (the repository root).
    """
    layers: list[tuple[str, dict[str, Any], str]] = []
    preset = preset_values(params.train)
    if preset:
        layers.append(("preset", {f"train.{k}": v for k, v in preset.items()}, "train.preset"))
    if tuned and params.train.use_tuned:
        path = Path(root) / params.train.tuned_params
        layers.append(("tuned", load_tuned(path), str(path)))
    if overrides:
        layers.append(("override", dict(overrides), "overrides"))
    applied: dict[str, Any] = {}
    for layer, values, source in layers:
        params = with_overrides(params, values, source)
        short = (k.removeprefix("train.") if layer == "preset" else k for k in values)
        applied.update({f"{layer}.{k}": v for k, v in zip(short, values.values(), strict=True)})
    return Resolved(params, applied)


def load_tuned(path: str | Path) -> dict[str, Any]:
    """Dotted overrides from a tune stage's best_params.yaml (e.g. {"train.lr": 3e-4})."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            "train.use_tuned is true but the tuned parameters file does not exist",
            path=path,
            fix="run the tune stage first (dvc repro tune), or set train.use_tuned: false",
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}", path=path) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of dotted keys to values", path=path)
    bad = [k for k in raw if not str(k).startswith("train.")]
    if bad:
        raise ConfigError(
            f"only train.* keys can be tuned, found {bad}",
            path=path,
            fix="rerun the tune stage, or remove those keys",
        )
    return {str(k): v for k, v in raw.items()}

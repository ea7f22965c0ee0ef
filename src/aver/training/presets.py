"""Named training presets and how they combine with params.yaml and tuned values.

Precedence, lowest to highest:
  1. TrainConfig defaults (aver.config) and the keys written in params.yaml under `train:`
  2. the preset named by `train.preset`: it sets exactly the keys it lists, over params.yaml
     (so `dvc exp run -S train.preset=avtca_paper` runs the preset as published)
  3. tuned values from `train.tuned_params` (reports/tune/best_params.yaml) when `train.use_tuned`

To change one of a preset's keys, copy the preset's values into params.yaml and drop the preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aver.config import Params, TrainConfig, with_overrides
from aver.errors import ConfigError

# Keys are relative to `train` (dotted for the nested model section).
PRESETS: dict[str, dict[str, Any]] = {
    # AVT-CA paper (Venkatraman et al.), as published. Sec. IV: "trained for 128 epochs",
    # "batch size was set to 8, and the Adam optimizer was used with a learning rate of 0.01 and
    # a weight decay of 0.001"; Sec. III-D: cross-entropy on the fused prediction only. No
    # schedule, warm-up, clipping, smoothing, augmentation or early stopping is reported, so none
    # is used, and the model kept is the last epoch's (no checkpoint selection is described).
    # The face stem convolution has stride 1 as in Sec. III-A2.
    # Remaining deviations (this preset cannot remove them; see README "Presets"):
    #  - inputs: the paper gives audio only as A in R^{T x C} and faces as T x H x W x 3, with no
    #    feature type, window, frame rate or face size; we use the cache's log-mel (n_mels 64,
    #    25/10 ms), 5 fps 64 x 64 faces over a 2 s window (cache.*), as for the other models;
    #  - widths: d_model, conv channels, patches, layers and dropout are not given; ours are the
    #    model defaults (train.model.*), the heads follow the variant (full: 4 IT, 4 CT);
    #  - data and protocol: the paper reports one 80/20 train/validation split (Table I) of
    #    RAVDESS, CMU-MOSEI and CREMA-D and does not say whether speakers are disjoint; we train
    #    on data.dataset with cache.protocol (speaker k-fold by default, demo data by default);
    #  - seed, initialisation and Adam betas/eps are not given: torch defaults, train.seed.
    # (ctm_weight is unused by avtca; the paper has no CTM loss either.)
    "avtca_paper": {
        "optimizer": "adam",
        "lr": 0.01,
        "weight_decay": 0.001,
        "batch_size": 8,
        "epochs": 128,
        "schedule": "none",
        "warmup_epochs": 0,
        "label_smoothing": 0.0,
        "grad_clip": None,
        "early_stop_patience": None,
        "select": "last",
        "augment": False,
        "model.name": "avtca",
        "model.variant": "full",
        "model.video_stride": 1,
        "model.unimodal_weight": 0.0,  # the per-stream classifiers are ours, not the paper's
    },
    # A minute on a laptop CPU: a small MSAN for smoke runs and the demo dataset.
    "demo_fast": {
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 1e-2,
        "batch_size": 8,
        "epochs": 4,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "early_stop_patience": None,
        "model.name": "msan",
        "model.d_model": 32,
        "model.heads": 2,
        "model.layers": 1,
    },
}


def preset_values(train: TrainConfig) -> dict[str, Any]:
    """The preset's values (dotted keys relative to train); empty without a preset."""
    name = train.preset
    if name in (None, "none"):
        return {}
    if name not in PRESETS:
        raise ConfigError(f"train.preset: unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    out = dict(PRESETS[name])
    return out


def apply_preset(params: Params) -> Params:
    """Params with the preset filled in. Call on params as loaded from YAML (before any
    re-validation such as `with_overrides`, which marks every key as explicitly set)."""
    values = preset_values(params.train)
    if not values:
        return params
    return with_overrides(params, {f"train.{k}": v for k, v in values.items()}, "train.preset")


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


def resolve_params(params: Params, root: str | Path = ".") -> tuple[Params, dict[str, Any]]:
    """Apply the preset, then tuned values; return the resolved params and what was applied."""
    applied: dict[str, Any] = {f"preset.{k}": v for k, v in preset_values(params.train).items()}
    resolved = apply_preset(params)
    if params.train.use_tuned:
        path = Path(root) / params.train.tuned_params
        tuned = load_tuned(path)
        resolved = with_overrides(resolved, tuned, str(path))
        applied.update({f"tuned.{k}": v for k, v in tuned.items()})
    return resolved, applied

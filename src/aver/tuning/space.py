"""Search space from params.yaml (`tune.space`: dotted params key -> distribution).

`validate_space` checks every entry against the train config when the tune stage starts (before
MLflow or Ray), so a typo fails in a second with the key named, not in every trial later.
`space_for_model` first drops the `train.model.*` keys of models other than the one the sweep
trains (params.yaml may list keys of several models), with a log line each.
"""

from __future__ import annotations

import logging
import math
import types
import typing
from typing import Any

from pydantic import BaseModel
from ray import tune

from aver.config import Params, SearchParam, with_overrides
from aver.errors import ConfigError
from aver.models import MODEL_CONFIGS, model_keys

log = logging.getLogger(__name__)

# Keys the sweep sets itself: searching them would fight the sweep's own settings.
RESERVED = {"train.epochs": "tune.max_epochs sets the epochs of every trial"}
FIX = "edit tune.space in params.yaml"


def key_models(key: str) -> list[str]:
    """The models a dotted `train.model.*` key belongs to (every model for other keys)."""
    prefix = "train.model."
    if not key.startswith(prefix) or "." in key[len(prefix) :]:
        return list(MODEL_CONFIGS)
    return [name for name in MODEL_CONFIGS if key[len(prefix) :] in model_keys(name)]


def space_for_model(params: Params) -> Params:
    """`params` with tune.space limited to keys of the model train.model.name names.

    A key only other models have is skipped with an INFO line; a key no model has stays (and
    `validate_space` names it)."""
    name = params.train.model.name
    keep: dict[str, SearchParam] = {}
    for key, spec in params.tune.space.items():
        owners = key_models(key)
        if owners and name not in owners:
            log.info(
                "tune.space.%s: a key of %s, not of train.model.name=%s; not searched",
                key,
                "/".join(owners),
                name,
            )
            continue
        keep[key] = spec
    if len(keep) == len(params.tune.space):
        return params
    return params.model_copy(update={"tune": params.tune.model_copy(update={"space": keep})})


def validate_space(params: Params) -> None:
    """Raise ConfigError naming the first bad `tune.space` entry and how to fix it."""
    space = params.tune.space
    if not space:
        raise ConfigError(
            "tune.space is empty: nothing to search",
            fix="declare at least one entry under tune.space in params.yaml",
        )
    for key, spec in space.items():
        _check_entry(params, key, spec)


def _check_entry(params: Params, key: str, spec: SearchParam) -> None:
    where = f"tune.space.{key}"
    annotation = _train_field(params, key, where)
    if key in RESERVED:
        raise ConfigError(f"{where}: cannot be searched ({RESERVED[key]})", fix=FIX)
    if spec.type == "choice":
        if spec.low is not None or spec.high is not None:
            raise ConfigError(f"{where}: 'choice' takes 'values', not low/high", fix=FIX)
        if not spec.values:
            raise ConfigError(
                f"{where}: 'choice' needs a non-empty 'values' list",
                fix=f"{FIX}: e.g. values: [a, b]",
            )
        candidates = list(spec.values)
    else:
        candidates = _check_range(key, spec, annotation)
    for value in candidates:
        try:
            with_overrides(params, {key: value}, where)
        except ConfigError as err:
            detail = str(err).splitlines()[1:2] or [str(err)]
            raise ConfigError(
                f"{where}: {value!r} is not a valid {key} ({detail[0].strip()})", fix=FIX
            ) from None


def _check_range(key: str, spec: SearchParam, annotation: Any) -> list[Any]:
    """Bounds of a loguniform/uniform/randint entry, checked; the values to try on the config."""
    where = f"tune.space.{key}"
    if spec.values is not None:
        raise ConfigError(f"{where}: 'values' is only for type choice", fix=FIX)
    if spec.low is None or spec.high is None:
        raise ConfigError(f"{where}: '{spec.type}' needs 'low' and 'high'", fix=FIX)
    if not spec.low < spec.high:
        raise ConfigError(
            f"{where}: '{spec.type}' needs low < high (got low={spec.low}, high={spec.high})",
            fix=f"{FIX}: swap or widen the bounds, or use type choice for a single value",
        )
    if spec.type == "loguniform" and spec.low <= 0:
        raise ConfigError(
            f"{where}: loguniform needs low > 0 (got {spec.low})",
            fix=f"{FIX}: use a small positive low, or type uniform",
        )
    kinds = _kinds(annotation)
    if not kinds & {int, float}:
        allowed = sorted(k.__name__ if isinstance(k, type) else repr(k) for k in kinds)
        raise ConfigError(
            f"{where}: '{spec.type}' samples numbers but {key} is not numeric "
            f"({', '.join(allowed)})",
            fix=f"{FIX}: use type choice with the values to try",
        )
    if spec.type == "randint":
        if not (float(spec.low).is_integer() and float(spec.high).is_integer()):
            raise ConfigError(
                f"{where}: randint needs whole-number bounds (got {spec.low}, {spec.high})",
                fix=FIX,
            )
        return [int(spec.low), int(spec.high)]
    if float not in kinds:
        raise ConfigError(
            f"{where}: '{spec.type}' samples fractions but {key} is an integer",
            fix=f"{FIX}: use type randint (inclusive bounds) or choice",
        )
    return [spec.low, math.nextafter(spec.high, spec.low)]  # Ray samples [low, high)


def _train_field(params: Params, key: str, where: str) -> Any:
    """The type annotation of a dotted `train.` key; ConfigError when there is no such leaf.

    Sections are walked on `params` itself, so train.model is the resolved model's config."""
    parts = key.split(".")
    if parts[0] != "train" or len(parts) < 2:
        raise ConfigError(
            f"{where}: only train.* keys can be searched (each trial runs the training loop)",
            fix=f"{FIX}: use a key under train:, e.g. train.lr or train.model.dropout",
        )
    node: Any = params
    annotation: Any = None
    for depth, part in enumerate(parts):
        fields = type(node).model_fields
        if part not in fields:
            section = ".".join(parts[:depth])
            raise ConfigError(
                f"{where}: {section} has no key {part!r}",
                fix=f"{FIX}: keys under {section}: {', '.join(sorted(fields))}",
            )
        annotation = fields[part].annotation
        value = getattr(node, part)
        last = depth == len(parts) - 1
        is_section = isinstance(value, BaseModel)
        if is_section and not last:
            node = value
        elif is_section:
            example = f"{key}.{next(iter(type(value).model_fields))}"
            raise ConfigError(
                f"{where}: {key} is a section, not a value",
                fix=f"{FIX}: name a key inside it, e.g. {example}",
            )
        elif not last:
            raise ConfigError(f"{where}: {'.'.join(parts[: depth + 1])} is not a section", fix=FIX)
    return annotation


def _kinds(annotation: Any) -> set[Any]:
    """Plain types a field accepts: {float}, {int}, {int, NoneType}, {bool}, {'a', 'b'}..."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: set[Any] = set()
        for arg in typing.get_args(annotation):
            out |= _kinds(arg)
        return out
    if origin is typing.Literal:
        return set(typing.get_args(annotation))
    if annotation is bool:
        return {bool}  # not a number to sample, though bool subclasses int
    return {origin or annotation}


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

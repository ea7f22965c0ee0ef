"""Model Registry: register a logged model; the alias goes only to a better validation UAR.

A version carries tags `val_uar`, `protocol` and `leaky`. The alias (`champion`) moves to a new
version only when its val UAR is strictly higher than the current holder's, under the same
protocol. A model from a leaky protocol (random split) never takes the alias from a
speaker-independent one, and a speaker-independent model always replaces a leaky holder.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aver.errors import AverError
from aver.tracking import runs
from aver.tracking.runs import MlflowException

log = logging.getLogger(__name__)
MODEL_FILE = "model.pt"


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    champion: bool  # whether this version holds the alias now
    previous_champion: str | None


def register(model_uri: str, name: str, tags: dict[str, Any]) -> Any:
    """Register `model_uri` as a new version of `name` (created if needed) with tags."""
    client = runs.client()
    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # may be created concurrently
            client.create_registered_model(name, description="aver emotion recognition model")
    mv = runs.register_model(model_uri, name, {k: str(v) for k, v in tags.items()})
    return mv


def current_champion(name: str, alias: str = "champion") -> Any:
    try:
        return runs.client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def is_better(new: dict[str, str], old: dict[str, str] | None) -> bool:
    """Does a version with tags `new` beat the holder with tags `old` (see module doc)?"""
    if old is None:
        return True
    new_leaky, old_leaky = new.get("leaky") == "True", old.get("leaky") == "True"
    if new_leaky != old_leaky:
        return old_leaky
    if new.get("protocol") != old.get("protocol"):
        return False
    new_uar, old_uar = _float(new.get("val_uar")), _float(old.get("val_uar"))
    if math.isnan(new_uar):
        return False
    return math.isnan(old_uar) or new_uar > old_uar


def promote_if_better(name: str, version: str, alias: str = "champion") -> Registration:
    """Give `alias` to `version` if it beats the current holder; report who holds it."""
    client = runs.client()
    version = str(version)
    new = client.get_model_version(name, version)
    old = current_champion(name, alias)
    old_version = None if old is None else str(old.version)
    if old_version == version:
        return Registration(name, version, True, old_version)
    if is_better(dict(new.tags), dict(old.tags) if old is not None else None):
        client.set_registered_model_alias(name, alias, version)
        log.info(
            "%s version %s is the new %s (val UAR %s; previous %s)",
            name,
            version,
            alias,
            new.tags.get("val_uar"),
            old_version,
        )
        return Registration(name, version, True, old_version)
    log.info(
        "%s version %s (val UAR %s) does not beat %s version %s (val UAR %s)",
        name,
        version,
        new.tags.get("val_uar"),
        alias,
        old_version,
        old.tags.get("val_uar") if old else "?",
    )
    return Registration(name, version, False, old_version)


def download_model_file(uri: str, dst: str | Path | None = None) -> Path:
    """models.pt of a logged aver model, from an MLflow URI (models:/name@champion,
    models:/name/3, runs:/<id>/model, models:/<model_id>); for `aver predict` and evaluation."""
    try:
        local = runs.download_artifacts(uri.rstrip("/") + "/artifacts/" + MODEL_FILE, dst)
    except MlflowException as err:
        raise AverError(
            f"cannot download {MODEL_FILE} of MLflow model {uri} ({str(err)[:300]})",
            fix="check the URI (models:/<name>@champion) and MLFLOW_TRACKING_URI",
        ) from None
    return Path(local)


def _float(x: str | None) -> float:
    try:
        return float(x) if x is not None else math.nan
    except ValueError:
        return math.nan

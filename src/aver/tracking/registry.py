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
CARD_FILE = "MODEL_CARD.md"  # the human model card, an artifact of the registering run
DESCRIPTION_MAX = 5000  # characters MLflow's SQL stores keep for a version's description


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


def describe(name: str, version: str, text: str, uri: str | None = None) -> None:
    """Set a version's description (the model card; cut to what the store keeps, pointing
    at the full MODEL_CARD.md artifact)."""
    if len(text) > DESCRIPTION_MAX:
        tail = f"\n\n[cut here: the whole card is the {CARD_FILE} artifact of the version's run]\n"
        text = text[: DESCRIPTION_MAX - len(tail)] + tail
    runs.client(uri).update_model_version(name, str(version), description=text)


def model_version(uri: str) -> Any:
    """The ModelVersion a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI names."""
    ref = uri.removeprefix("models:/").strip("/")
    client = runs.client()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, _, version = ref.rpartition("/")
        if not name or not version.isdigit():
            raise AverError(
                f"{uri} names no registered model version",
                fix="use models:/<name>@<alias> or models:/<name>/<version>",
            )
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise AverError(
            f"cannot find registered model version {uri} ({str(err)[:300]})",
            fix="check the URI (models:/<name>@champion) and MLFLOW_TRACKING_URI",
        ) from None


def model_card_text(uri: str) -> str:
    """The MODEL_CARD.md of a registered version (the run's artifact; else its description)."""
    mv = model_version(uri)
    if mv.run_id:
        with contextlib.suppress(MlflowException, OSError):
            local = runs.download_artifacts(f"runs:/{mv.run_id}/{CARD_FILE}")
            return Path(local).read_text(encoding="utf-8")
    if not mv.description:
        raise AverError(
            f"{uri} (version {mv.version}) has no model card",
            fix="retrain with this aver (dvc repro train) to register a version with one",
        )
    return str(mv.description)


def _float(x: str | None) -> float:
    try:
        return float(x) if x is not None else math.nan
    except ValueError:
        return math.nan

"""dvc.yaml declares, for each stage, the params.yaml keys its code reads.

The reads are derived statically from mypy's types (tests/support/params_reads.py): every
attribute read on a config section in the modules a stage imports. A declared section covers
its keys (`train` covers `train.lr`). The two sets below are the checked exceptions: keys a
stage sets itself, and keys its imported modules read that do not shape its outputs. An entry
that no longer applies fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aver.config import load_params
from tests.support.params_reads import covered, field_reads, stage_modules

REPO = Path(__file__).resolve().parents[1]

# The feature settings are read back from data/features (meta.json, a dependency), not params.
_FEATURES = {
    f"cache.{k}": "read from the cache's meta.json, not params (features.window/audio are "
    "imported for their arrays, their from_config is the cache stage's)"
    for k in (
        "audio_encoder", "audio_layers", "face_encoder", "n_mels", "n_mfcc", "win_ms", "hop_ms",
        "video_fps", "face_size", "window_s", "crop",
    )
}  # fmt: skip

# stage -> {key read by an imported module: why it does not change this stage's outputs}
NOT_AFFECTING: dict[str, dict[str, str]] = {
    "align": {"download": "transfer settings (retries, timeouts) of the retinaface weights"},
    "tune": {
        **_FEATURES,
        "train.tuned_params": "what train reads; tune writes tune.out",
    },
    "train": {
        **_FEATURES,
        **{
            key: "read by aver.predict, which the logged pyfunc runs when it is served (with "
            "the model card's settings), not by the train stage"
            for key in ("align", "extract", "download", "data.root", "cache.hop_s")
        },
    },
    "evaluate": _FEATURES,
}


def set_by_sweep() -> set[str]:
    """Keys the sweep sets itself in every trial: its space and the epoch budget."""
    params = load_params(REPO / "params.yaml")
    return {*params.tune.space, "train.epochs"}


@pytest.fixture(scope="module")
def reads() -> dict[str, set[str]]:
    cache = Path.home() / ".cache" / "aver" / "mypy-params-reads"  # library types: a minute
    return field_reads(REPO / "src", cache)


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_reads(stage: str, reads: dict[str, set[str]]) -> set[str]:
    return set().union(*(reads.get(m, set()) for m in stage_modules(REPO, stage)))


def test_every_stage_declares_the_params_it_reads(reads, stages):
    missing = {}
    for stage, spec in stages.items():
        declared = set(spec.get("params", []))
        if stage == "tune":
            declared |= set_by_sweep()
        skip = set(NOT_AFFECTING.get(stage, {}))
        lost = sorted(p for p in stage_reads(stage, reads) if not covered(p, declared | skip))
        if lost:
            missing[stage] = lost
    assert not missing, f"dvc.yaml stages do not declare params their code reads: {missing}"


def test_not_affecting_entries_still_apply(reads, stages):
    stale = []
    for stage, keys in NOT_AFFECTING.items():
        declared = set(stages[stage].get("params", []))
        read = stage_reads(stage, reads)
        for key in keys:
            if covered(key, declared) or not any(covered(p, {key}) for p in read):
                stale.append(f"{stage}: {key}")
    assert not stale, f"NOT_AFFECTING entries now declared or no longer read: {stale}"


def test_reads_seen_through_aliases_and_workers(reads):
    """A few known reads, through local aliases (`cfg = params.train`) and worker code."""
    assert "train.schedule" in stage_reads("tune", reads)
    assert "train.augment" in stage_reads("tune", reads)
    assert "align.detect_every" in reads["aver.faces.pipeline"]
    assert "train.model.name" in stage_reads("train", reads)

"""Registry: versions carry val UAR; the champion alias moves only to a better model."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from aver.config import TrackingConfig
from aver.tracking import registry, runs


def _version(exp_id: str, name: str, val_uar: float, protocol="speaker_kfold", leaky=False):
    with runs.start(exp_id, run_name="m") as run:
        import mlflow

        mlflow.log_text("weights", "model/artifacts/model.pt")
    client = MlflowClient()
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    tags = {"val_uar": f"{val_uar:.6f}", "protocol": protocol, "leaky": str(leaky)}
    mv = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
    )
    return mv.version


@pytest.mark.parametrize("store", ["embedded_store", "server_store"])
def test_champion_only_moves_to_better_model(store, request):
    request.getfixturevalue(store)
    exp_id = runs.setup(TrackingConfig(), "demo")
    name = f"aver-demo-{store}"
    v1 = _version(exp_id, name, 0.50)
    assert registry.promote_if_better(name, v1).champion  # first version takes the alias
    v2 = _version(exp_id, name, 0.40)
    r2 = registry.promote_if_better(name, v2)
    assert not r2.champion and r2.previous_champion == str(v1)
    v3 = _version(exp_id, name, 0.50)  # a tie does not move it either
    assert not registry.promote_if_better(name, v3).champion
    v4 = _version(exp_id, name, 0.61)
    assert registry.promote_if_better(name, v4).champion
    assert str(registry.current_champion(name).version) == str(v4)
    # the alias resolves for downloads (what `aver predict --model models:/...@champion` uses)
    path = registry.download_model_file(f"models:/{name}@champion")
    assert path.read_text() == "weights"


def test_leaky_protocol_never_beats_speaker_independent():
    si = {"val_uar": "0.5", "protocol": "speaker_kfold", "leaky": "False"}
    leaky = {"val_uar": "0.9", "protocol": "random", "leaky": "True"}
    assert not registry.is_better(leaky, si)
    assert registry.is_better(si, leaky)
    assert registry.is_better(si, None)
    assert not registry.is_better({**si, "val_uar": "nan"}, {**si, "val_uar": "0.1"})
    assert registry.is_better(si, {**si, "val_uar": "nan"})

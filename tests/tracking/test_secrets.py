"""A tracking server behind authentication: credentials in the URI (userinfo or ?token=) or in
MLflow's env vars authenticate every request, and appear in no file, param, tag, log or error."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from aver.config import TrackingConfig, with_overrides
from aver.errors import AverError
from aver.evaluation.pipeline import run as evaluate
from aver.tracking import credentials, runs
from aver.training.pipeline import run as train
from tests.support.auth_proxy import AuthProxy
from tests.support.mlflow_server import free_port
from tests.tracking.conftest import _reset_mlflow, tiny_params

SECRET = f"s3cr3t-{secrets.token_hex(8)}"  # unique: a hit anywhere in the test tree is a leak
USER = "alice"
ENV_VARS = (credentials.ENV_USERNAME, credentials.ENV_PASSWORD, credentials.ENV_TOKEN)


@pytest.fixture(scope="module")
def proxy(mlflow_server: str) -> Iterator[AuthProxy]:
    with AuthProxy(mlflow_server, user=USER, password=SECRET, token=SECRET) as p:
        yield p


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No tracking URI or credentials in the environment (restored afterwards); cwd tmp_path."""
    for key in (*ENV_VARS, "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(key, "unset")  # so that monkeypatch restores the original state
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    credentials.export({})  # undo what the code under test exported
    _reset_mlflow()


def _leaks(root: Path) -> list[str]:
    """Files under `root` whose bytes contain the secret."""
    return [str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


# ---- splitting credentials out of a URI -------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "clean", "creds"),
    [
        ("http://u:p%40w@h:5000/x", "http://h:5000/x", {"USERNAME": "u", "PASSWORD": "p@w"}),
        ("https://tok@h", "https://h", {"TOKEN": "tok"}),
        ("https://h/?a=1&token=t&b=2", "https://h/?a=1&b=2", {"TOKEN": "t"}),
        ("https://h?access_token=t", "https://h", {"TOKEN": "t"}),
        ("https://u:p@h?token=t", "https://h", {"USERNAME": "u", "PASSWORD": "p", "TOKEN": "t"}),
        ("https://h:5000/ml?experiment=1", "https://h:5000/ml?experiment=1", {}),
        ("sqlite:///mlruns.db", "sqlite:///mlruns.db", {}),
    ],
)
def test_split_moves_credentials_to_mlflow_env_vars(uri, clean, creds):
    assert credentials.split(uri) == (clean, {f"MLFLOW_TRACKING_{k}": v for k, v in creds.items()})


def test_export_restores_what_it_replaced(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(credentials.ENV_TOKEN, "mine")
    monkeypatch.setenv(credentials.ENV_USERNAME, "unset")
    monkeypatch.delenv(credentials.ENV_USERNAME)
    credentials.export({credentials.ENV_TOKEN: "from-uri", credentials.ENV_USERNAME: "u"})
    assert os.environ[credentials.ENV_TOKEN] == "from-uri"
    credentials.export({})
    assert os.environ[credentials.ENV_TOKEN] == "mine"
    assert credentials.ENV_USERNAME not in os.environ


# ---- a real mlflow server behind an authenticating proxy --------------------------------------


@pytest.mark.parametrize("form", ["userinfo_in_params", "query_token_in_env"])
def test_train_and_evaluate_with_credentials_in_the_uri(
    form, proxy, clean_env, tiny_cache, tmp_path_factory, caplog, capfd, monkeypatch
):
    prefix = f"sec-{form.split('_')[0]}"
    params = tiny_params(tiny_cache, clean_env, prefix=prefix, epochs=1)
    if form == "userinfo_in_params":
        params = with_overrides(
            params, {"tracking.tracking_uri": f"http://{USER}:{SECRET}@127.0.0.1:{proxy.port}"}
        )
        shown, how = f"http://***:***@127.0.0.1:{proxy.port}", "basic"
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{proxy.url}/?token={SECRET}")
        shown, how = f"{proxy.url}/?token=***", "bearer"
    start = len(proxy.seen)
    caplog.set_level("INFO")

    summary = train(params)
    evaluate(params)

    seen = proxy.seen[start:]
    assert [s for s in seen if s.how is None] == []  # nothing unauthenticated
    assert {s.how for s in seen} == {how}  # MLflow and the health check sent the credentials
    assert {"/health", "/api/2.0/mlflow/runs/log-batch"} <= {s.path for s in seen}
    assert any(s.path.startswith("/api/2.0/mlflow-artifacts/") and s.method == "PUT" for s in seen)
    assert summary["mlflow"]["tracking_uri"] == shown
    written = json.loads((clean_env / "models" / "train_summary.json").read_text())
    assert written["mlflow"]["tracking_uri"] == shown
    client = MlflowClient()
    exp = client.get_experiment_by_name(f"{prefix}-demo")
    found = client.search_runs([exp.experiment_id])
    assert len(found) == 2  # parent + fold 0
    for run in found:
        assert SECRET not in json.dumps([run.data.params, run.data.tags])
    parent = client.get_run(summary["mlflow"]["parent_run_id"])
    assert parent.data.params["tracking.tracking_uri"] == (
        shown if form == "userinfo_in_params" else "null"
    )
    config = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/config/resolved_params.yaml")
    assert (shown in config) == (form == "userinfo_in_params")
    assert "test_uar" in parent.data.metrics  # evaluate logged through the proxy too
    # no file anywhere in this session's temp tree: work dir, server db, artifact store
    assert _leaks(tmp_path_factory.getbasetemp()) == []
    out, err = capfd.readouterr()
    assert SECRET not in caplog.text + out + err
    assert shown in caplog.text  # the store is still named, redacted


def test_server_check_errors_name_no_secret(proxy, clean_env, monkeypatch):
    wrong = f"http://{USER}:wrong-{SECRET}@127.0.0.1:{proxy.port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", wrong)
    with pytest.raises(AverError, match="refused the credentials") as err:
        runs.setup(TrackingConfig(), "demo")
    assert SECRET not in str(err.value) and "MLFLOW_TRACKING_PASSWORD" in str(err.value)
    assert proxy.seen[-1].how is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}/?token={SECRET}")
    with pytest.raises(AverError, match="not reachable") as err:
        runs.setup(TrackingConfig(), "demo")
    assert SECRET not in str(err.value) and "?token=" not in str(err.value)


@pytest.mark.parametrize(
    ("env", "how"),
    [
        ({credentials.ENV_USERNAME: USER, credentials.ENV_PASSWORD: SECRET}, "basic"),
        ({credentials.ENV_TOKEN: SECRET}, "bearer"),
    ],
)
def test_mlflow_env_vars_authenticate_the_check_and_mlflow(env, how, proxy, clean_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    start = len(proxy.seen)
    exp_id = runs.setup(TrackingConfig(experiment_prefix="sec-env"), "demo")
    with runs.start(exp_id, run_name="r", tags={"k": "v"}):
        runs.log_params({"a": 1})
    seen = proxy.seen[start:]
    assert seen[0].path == "/health" and {s.how for s in seen} == {how}

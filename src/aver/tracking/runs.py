"""MLflow tracking: store resolution, experiments, parent/child runs, provenance tags.

The one module that calls MLflow's tracking API (runs, params, metrics, tags, artifacts, the
registry client); the rest of aver goes through it. Two ways to log: to the active run of
`start` (`log_params`, `log_metrics`, `log_artifact`, ...), or to a run by id with `RunRef`
(a Tune trial, a DDP rank, the evaluate stage: processes with no active run).

Store: $MLFLOW_TRACKING_URI, else `tracking.tracking_uri`, else the embedded local store
`sqlite:///mlruns.db` (relative to the working directory, the repository root under DVC). Local
stores keep artifacts under `tracking.artifact_root` (`mlartifacts/`); a tracking server uses
its own artifact configuration. One experiment per dataset: `{experiment_prefix}-{dataset}`.
Credentials in a server URI go to MLflow's env vars (aver.tracking.credentials); everything
aver logs or writes (params, tags, YAML, messages) is redacted (aver.redact).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import socket
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
import yaml
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aver.config import TrackingConfig, flatten
from aver.errors import AverError
from aver.redact import redact_obj, redact_text, redact_uri
from aver.tracking import credentials
from aver.workspace import code_info

log = logging.getLogger(__name__)
DEFAULT_URI = "sqlite:///mlruns.db"
ENV_URI = "MLFLOW_TRACKING_URI"
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_CHARS = 6000
# Tags that let a rerun find the runs an earlier process of the same stage left open.
STAGE_TAG = "aver.stage"
WORKSPACE_TAG = "aver.workspace"  # host:working directory
PID_TAG = "aver.pid"  # the stage process
CLOSED_TAG = "aver.closed"  # why a run was ended by someone else than its own process


def tracking_uri(cfg: TrackingConfig) -> str:
    """$MLFLOW_TRACKING_URI > tracking.tracking_uri > sqlite:///mlruns.db."""
    return os.environ.get(ENV_URI) or cfg.tracking_uri or DEFAULT_URI


def absolute_uri(uri: str) -> str:
    """A relative sqlite path made absolute (relative to the working directory now)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def is_local_store(uri: str) -> bool:
    """True for stores on this machine (sqlite, file), whose artifacts we place ourselves."""
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    return scheme in ("", "file", "sqlite") or (len(scheme) == 1)  # "" / C: = a plain path


def connect(uri: str) -> str:
    """Export the credentials in `uri` to MLflow's env vars; the URI to hand MLflow (none left).
    See aver.tracking.credentials.use."""
    return credentials.use(uri)


def experiment_name(cfg: TrackingConfig, dataset: str) -> str:
    return f"{cfg.experiment_prefix}-{dataset}"


def setup(cfg: TrackingConfig, dataset: str) -> str:
    """Point MLflow at the store, make sure the dataset's experiment exists; its id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports unless asked
    uri = connect(absolute_uri(tracking_uri(cfg)))
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment_name(cfg, dataset)
    client = MlflowClient()
    try:
        exp = client.get_experiment_by_name(name)
    except MlflowException as err:
        raise AverError(
            f"cannot use the MLflow tracking store {redact_uri(uri)} "
            f"({redact_text(str(err))[:300]})",
            fix="start the tracking server, or unset MLFLOW_TRACKING_URI / "
            "tracking.tracking_uri to use the local sqlite:///mlruns.db",
        ) from None
    if exp is None:
        location = Path(cfg.artifact_root).resolve().as_uri() if is_local_store(uri) else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created concurrently (e.g. by a tune trial)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _check_server(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast (MLflow's client retries for minutes) when the tracking server is down or
    refuses the credentials (those in `uri`, else MLflow's env vars)."""
    import requests

    clean, creds = credentials.split(uri)
    auth, headers = credentials.requests_auth(creds or os.environ)
    parts = urlsplit(clean)
    health = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/health", fragment=""))
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1")
    verify = False if insecure else os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    shown = redact_uri(clean)
    try:
        status = requests.get(
            health, auth=auth, headers=headers, timeout=timeout_s, verify=verify
        ).status_code
    except (requests.RequestException, OSError, ValueError) as err:
        raise AverError(
            f"MLflow tracking server {shown} is not reachable ({redact_text(str(err))})",
            fix="start it (mlflow server ...), or unset MLFLOW_TRACKING_URI / "
            "tracking.tracking_uri to use the local sqlite:///mlruns.db",
        ) from None
    if status in (401, 403):  # other answers (proxies, no /health): let MLflow report them
        raise AverError(
            f"MLflow tracking server {shown} refused the credentials (HTTP {status})",
            fix="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
            "MLFLOW_TRACKING_TOKEN (or put them in the URI: https://user:password@host)",
        )


def run_exists(run_id: str | None) -> bool:
    if not run_id:
        return False
    try:
        return MlflowClient().get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


@contextlib.contextmanager
def start(
    experiment_id: str,
    *,
    run_name: str,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start (or reopen `run_id`, e.g. after a crash) a run; nested under `parent_run_id`.

    The run ends FINISHED on success, FAILED on an exception, KILLED on Ctrl-C.
    """
    reuse = run_id if run_exists(run_id) else None
    tags = redact_obj({**code_info().tags(), **(tags or {})})
    kwargs: dict[str, Any] = (
        {"run_id": reuse} if reuse else {"experiment_id": experiment_id, "run_name": run_name}
    )
    if parent_run_id and not reuse:
        kwargs["tags"] = {PARENT_TAG: parent_run_id, **tags}
    elif not reuse:
        kwargs["tags"] = tags
    run = mlflow.start_run(nested=mlflow.active_run() is not None, **kwargs)
    if reuse:
        log.info("continuing MLflow run %s (%s)", reuse, run_name)
        mlflow.set_tags(dict(tags))
        _drop_closed_tag(reuse)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


def workspace() -> str:
    """This process's workspace as `host:cwd` (stale runs are looked for in the same one)."""
    return f"{socket.gethostname()}:{Path.cwd().resolve()}"


def stage_tags(stage: str) -> dict[str, str]:
    """Tags of a stage's runs: the stage, the workspace and this process's pid."""
    return {STAGE_TAG: stage, WORKSPACE_TAG: workspace(), PID_TAG: str(os.getpid())}


def close_stale(experiment_id: str, stage: str, *, keep: Collection[str | None] = ()) -> list[str]:
    """End as KILLED the RUNNING runs an earlier `stage` process in this workspace left open.

    A SIGKILLed (or OOM-killed) stage never ends its runs. Its top-level runs are found by
    stage and workspace tags, not by configuration, so runs of a changed config are found too;
    a run whose process is still alive is left alone. Their RUNNING child runs are closed with
    them. Runs in `keep` (about to be reopened) stay open, but their RUNNING children are
    closed. Returns the ids closed; each gets a `aver.closed` tag saying why.
    """
    client = MlflowClient()
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{STAGE_TAG}` = '{stage}' and status = 'RUNNING'"
    )
    here = workspace()
    closed: list[str] = []
    for run in found:
        tags = run.data.tags
        if PARENT_TAG in tags or tags.get(WORKSPACE_TAG) != here:
            continue
        if run.info.run_id not in keep:
            if _process_alive(tags.get(PID_TAG), run.info.run_id):
                continue
            why = (
                f"closed by a later {stage} run (pid {os.getpid()}, "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}): the process that ran it "
                f"(pid {tags.get(PID_TAG, '?')}) ended without closing it (SIGKILL, OOM, crash)"
            )
            close(run.info.run_id, "KILLED", why)
            closed.append(run.info.run_id)
        why = "its parent run's process ended without closing it"
        closed += close_children(run.info.run_id, "KILLED", why, keep=keep)
    if closed:
        log.info("closed %d stale RUNNING MLflow run(s) of an earlier %s", len(closed), stage)
    return closed


def close_children(
    parent_run_id: str, status: str, why: str, *, keep: Collection[str | None] = ()
) -> list[str]:
    """End the RUNNING child runs of `parent_run_id` (but those in `keep`) with `status`."""
    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' and status = 'RUNNING'",
    )
    ids = [c.info.run_id for c in children if c.info.run_id not in keep]
    for run_id in ids:
        close(run_id, status, why)
    return ids


def close(run_id: str, status: str, why: str) -> None:
    """End a run that its own process did not end, with the reason as the `aver.closed` tag."""
    client = MlflowClient()
    client.set_tag(run_id, CLOSED_TAG, why[:MAX_PARAM_CHARS])
    client.set_terminated(run_id, status)


def _drop_closed_tag(run_id: str) -> None:
    client = MlflowClient()
    if CLOSED_TAG in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, CLOSED_TAG)


def _process_alive(pid: str | None, run_id: str) -> bool:
    """Whether the process (on this host) that started a run still runs."""
    if not pid or not pid.isdigit():
        return False
    if int(pid) == os.getpid():  # this process: alive only if it has the run open now
        active = mlflow.active_run()
        return active is not None and active.info.run_id == run_id
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def log_params(params: Mapping[str, Any]) -> None:
    """Log flattened params (values stringified and redacted, long ones cut); skips ones
    already logged."""
    run = mlflow.active_run()
    assert run is not None
    existing = MlflowClient().get_run(run.info.run_id).data.params
    fresh = {}
    for k, v in params.items():
        text = redact_text("null" if v is None else str(v))[:MAX_PARAM_CHARS]
        if k in existing:
            continue
        fresh[k] = text
    items = list(fresh.items())
    for i in range(0, len(items), 90):  # MLflow accepts at most 100 params per batch
        mlflow.log_params(dict(items[i : i + 90]))


def log_epoch(metrics: Mapping[str, float], epoch: int, prefix: str = "") -> None:
    """Per-epoch scalars of the active run at step=epoch (non-finite values skipped)."""
    run = mlflow.active_run()
    assert run is not None
    items = [
        Metric(f"{prefix}{k}", float(v), _now_ms(), int(epoch))
        for k, v in metrics.items()
        if isinstance(v, int | float) and math.isfinite(float(v)) and k != "epoch"
    ]
    if items:
        MlflowClient().log_batch(run.info.run_id, metrics=items, synchronous=True)


def logged_steps(run_id: str, key: str) -> set[int]:
    """Steps already recorded for a metric (to backfill a resumed run without duplicates)."""
    return {m.step for m in MlflowClient().get_metric_history(run_id, key)}


def log_yaml(obj: Any, artifact_file: str) -> None:
    """Log `obj` (redacted) as a YAML artifact of the active run."""
    mlflow.log_text(yaml.safe_dump(redact_obj(obj), sort_keys=False), artifact_file)


def data_fingerprint(cache_dir: str | Path, lock: str | Path = "dvc.lock") -> dict[str, str]:
    """Identify the feature cache: sha256 of its index.csv, meta.json and stats.json, plus the
    `dvc.lock` md5 of the cache stage's output when one is recorded."""
    cache_dir = Path(cache_dir)
    h = hashlib.sha256()
    for name in ("index.csv", "meta.json", "stats.json"):
        path = cache_dir / name
        h.update(name.encode())
        if path.exists():
            h.update(path.read_bytes())
    out = {"data_fingerprint": h.hexdigest()[:16]}
    md5 = _dvc_lock_md5(Path(lock), cache_dir)
    if md5:
        out["dvc_cache_md5"] = md5
    return out


def encoder_tags(encoders: Mapping[str, Any]) -> dict[str, str]:
    """Tags naming the encoders of a cache's meta.json: `encoder.audio` (name), and for a
    pretrained one `encoder.audio.weights_sha256` and `encoder.audio.layers`; same for face."""
    tags = {}
    for kind, rec in encoders.items():
        if not isinstance(rec, Mapping) or "name" not in rec:
            continue
        tags[f"encoder.{kind}"] = str(rec["name"])
        if rec.get("weights_sha256"):
            tags[f"encoder.{kind}.weights_sha256"] = str(rec["weights_sha256"])
        if rec.get("layers"):
            tags[f"encoder.{kind}.layers"] = ",".join(str(k) for k in rec["layers"])
    return tags


def _dvc_lock_md5(lock: Path, cache_dir: Path) -> str | None:
    if not lock.exists():
        return None
    try:
        data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return None
    want = cache_dir.resolve()
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            path = out.get("path")
            if path and (lock.parent / path).resolve() == want:
                return str(out.get("md5") or out.get("hash") or "") or None
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)


# ---- the active run (inside `start`) ---------------------------------------------------------


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Scalars of the active run."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """A file of the active run."""
    mlflow.log_artifact(str(path), artifact_path)


def log_artifacts(directory: str | Path, artifact_path: str | None = None) -> None:
    """Every file under `directory`, of the active run."""
    mlflow.log_artifacts(str(directory), artifact_path)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Tags of the active run (redacted)."""
    mlflow.set_tags(redact_obj({k: str(v) for k, v in tags.items()}))


def current_uri() -> str:
    """The tracking URI MLflow uses now (after `setup` or `use_store`)."""
    return mlflow.get_tracking_uri()


def use_store(uri: str) -> None:
    """Point MLflow's tracking and registry at `uri` (credentials already exported)."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def client(uri: str | None = None) -> MlflowClient:
    """The MLflow client of `uri` (None: the current store), tracking and registry alike."""
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# ---- a run by id (no active run) -------------------------------------------------------------


class RunRef:
    """One MLflow run addressed by id, for processes with no active run (Tune trials, DDP rank
    0, the evaluate stage). `uri`: the store (credentials already exported; None: current)."""

    def __init__(self, run_id: str, uri: str | None = None) -> None:
        self.run_id = run_id
        self.client = client(uri)

    @classmethod
    def create(
        cls,
        experiment_id: str,
        *,
        run_name: str,
        tags: Mapping[str, str],
        uri: str | None = None,
    ) -> RunRef:
        """A new RUNNING run (with code provenance tags)."""
        ref = cls("", uri)
        all_tags = redact_obj({**code_info().tags(), **tags})
        run = ref.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        ref.run_id = run.info.run_id
        return ref

    def exists(self) -> bool:
        try:
            return self.client.get_run(self.run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    @property
    def experiment_id(self) -> str:
        return self.client.get_run(self.run_id).info.experiment_id

    def reopen(self, tags: Mapping[str, str] = {}) -> None:
        """Mark RUNNING again (a restarted trial); drop a `aver.closed` tag; set `tags`."""
        self.client.update_run(self.run_id, status="RUNNING")
        if CLOSED_TAG in self.client.get_run(self.run_id).data.tags:
            self.client.delete_tag(self.run_id, CLOSED_TAG)
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params (stringified, redacted, cut to MAX_PARAM_CHARS); skips ones already logged."""
        existing = self.client.get_run(self.run_id).data.params
        items = [
            Param(k, redact_text("null" if v is None else str(v))[:MAX_PARAM_CHARS])
            for k, v in params.items()
            if k not in existing
        ]
        for i in range(0, len(items), 90):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i : i + 90], synchronous=True)

    def log_config(self, params: Any, artifact_file: str = "config.yaml") -> None:
        """The fully resolved config the run ran with: flattened params + the whole YAML."""
        self.log_params(flatten(params))
        text = yaml.safe_dump(redact_obj(params.model_dump(mode="json")), sort_keys=False)
        self.client.log_text(self.run_id, text, artifact_file)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int = 0, *, finite_only: bool = True
    ) -> None:
        """Scalars at `step` (the key "epoch" is skipped: it is the step); with `finite_only`
        (default) NaN and infinities are left out."""
        items = [
            Metric(k, float(v), _now_ms(), int(step))
            for k, v in metrics.items()
            if isinstance(v, int | float)
            and (math.isfinite(float(v)) or not finite_only)
            and k != "epoch"
        ]
        if items:
            self.client.log_batch(self.run_id, metrics=items, synchronous=True)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def metric_steps(self, key: str) -> set[int]:
        """Steps already recorded for a metric."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def register_model(model_uri: str, name: str, tags: Mapping[str, str]) -> Any:
    """A new version of registered model `name` from `model_uri` (its ModelVersion)."""
    return mlflow.register_model(model_uri, name, tags=dict(tags))


def download_artifacts(artifact_uri: str, dst: str | Path | None = None) -> str:
    """Download an artifact (runs:/, models:/ URIs); its local path."""
    return mlflow.artifacts.download_artifacts(
        artifact_uri=artifact_uri, dst_path=None if dst is None else str(dst)
    )


def set_model_version_tag(name: str, version: str, key: str, value: str, uri: str | None) -> None:
    client(uri).set_model_version_tag(name, version, key, value)

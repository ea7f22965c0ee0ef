"""MLflow tracking: store resolution, experiments, parent/child runs, provenance tags.

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
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aver.config import TrackingConfig
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

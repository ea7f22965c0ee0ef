"""Tracking-server credentials, passed the way MLflow takes them: its environment variables.

A tracking URI may carry credentials: `https://user:pass@host` or `https://host?token=...`.
MLflow's client appends its API paths to the URI, which breaks a query string, and it would
repeat the URI in messages, so `split` takes them out: the userinfo becomes
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (basic auth; a user name alone becomes the
token), a `token` / `access_token` / `auth_token` query value MLFLOW_TRACKING_TOKEN (bearer).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

ENV_USERNAME = "MLFLOW_TRACKING_USERNAME"
ENV_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
ENV_TOKEN = "MLFLOW_TRACKING_TOKEN"
TOKEN_PARAMS = ("token", "access_token", "auth_token")
_saved: dict[str, str | None] = {}  # values `export` replaced, restored by the next call
_host: str | None = None  # host:port the exported credentials are for


def split(uri: str) -> tuple[str, dict[str, str]]:
    """(`uri` without credentials, MLflow env vars holding them); other URIs unchanged."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return uri, {}
    creds: dict[str, str] = {}
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        if password:
            creds.update({ENV_USERNAME: unquote(user), ENV_PASSWORD: unquote(password)})
        elif user:
            creds[ENV_TOKEN] = unquote(user)
    kept = []
    for item in parts.query.split("&") if parts.query else []:
        key, _, value = item.partition("=")
        if unquote_plus(key).lower() not in TOKEN_PARAMS:
            kept.append(item)
        elif value and ENV_TOKEN not in creds:
            creds[ENV_TOKEN] = unquote_plus(value)
    if not creds:
        return uri, {}
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), parts.fragment)), creds


def use(uri: str) -> str:
    """`uri` without credentials; they are exported for its host. A later URI of the same host
    without credentials (MLflow sets MLFLOW_TRACKING_URI to the one it got) keeps them; one of
    another host drops them (restoring the variables as they were)."""
    clean, creds = split(uri)
    host = urlsplit(clean).netloc
    if creds or host != _host:
        export(creds, host)
    return clean


def export(creds: Mapping[str, str], host: str = "") -> None:
    """Set `creds` (for `host`) in os.environ, for MLflow, this process and its children; first
    restores whatever the previous call replaced."""
    global _host
    for key, old in _saved.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
    _saved.clear()
    for key, value in creds.items():
        _saved[key] = os.environ.get(key)
        os.environ[key] = value
    _host = host if creds else None


def requests_auth(
    env: Mapping[str, str] = os.environ,
) -> tuple[tuple[str, str] | None, dict[str, str]]:
    """(basic auth, headers) for requests from MLflow's variables in `env`, with MLflow's
    precedence: user and password, else the token as a bearer token."""
    user, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if user and password:
        return (user, password), {}
    token = env.get(ENV_TOKEN)
    return None, ({"Authorization": f"Bearer {token}"} if token else {})

"""Credentials in URLs never reach outputs: redact_uri / redact_text / the log filter."""

from __future__ import annotations

import io
import logging

import pytest

from aver.errors import AverError
from aver.redact import (
    RedactingFilter,
    install_log_redaction,
    redact_obj,
    redact_text,
    redact_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://user:s3cr3t@mlflow.example.com", "https://***:***@mlflow.example.com"),
        ("http://user:s3cr3t@127.0.0.1:5000/", "http://***:***@127.0.0.1:5000/"),
        ("https://tok3n@host.example/mlflow", "https://***@host.example/mlflow"),
        ("https://u:p%40ss@w0rd@host:8443/a/b", "https://***:***@host:8443/a/b"),
        ("https://host/p?token=s3cr3t", "https://host/p?token=***"),
        (
            "https://host:5000/ml?experiment=3&access_token=s3cr3t&view=table#x",
            "https://host:5000/ml?experiment=3&access_token=***&view=table#x",
        ),
        (
            "https://acct.blob.core.windows.net/c?sv=2022&sig=s3cr3t&se=2030",
            "https://acct.blob.core.windows.net/c?sv=2022&sig=***&se=2030",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=s3cr3t",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        (
            "http://h/?api_key=s3cr3t&password=pw&client_secret=cs",
            "http://h/?api_key=***&password=***&client_secret=***",
        ),
        ("https://u:p@h?token=t", "https://***:***@h?token=***"),
    ],
)
def test_redact_uri(uri: str, expected: str):
    assert redact_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://mlflow.example.com:8443/base/path/",
        "https://host/ml?experiment=3&view=table&design=x&monkey=1#frag",
        "sqlite:////abs/path/mlruns.db",
        "sqlite:///mlruns.db",
        "file:///tmp/mlartifacts",
        "mlflow-artifacts:/1/abc/artifacts",
        "models:/aver-demo@champion",
        "runs:/0123abcd/model",
        "s3://bucket/prefix/key.pt",
        "",
    ],
)
def test_uris_without_credentials_are_unchanged(uri: str):
    assert redact_uri(uri) == uri
    assert redact_text(f"store {uri} (ok)") == f"store {uri} (ok)"


def test_redact_text_handles_several_urls_and_bare_queries():
    text = (
        "cannot reach http://alice:s3cr3t@10.0.0.1:5000/api (then tried "
        "https://h2/x?token=t0k3n&a=1, https://public.example/docs); "
        "HTTPConnectionPool(host='h2', port=443): Max retries exceeded with url: "
        "/api/2.0/mlflow/runs/get?run_id=1&access_token=t0k3n (Caused by ...)\n"
        "headers: {'Authorization': 'Bearer b34r3r'}"
    )
    out = redact_text(text)
    for secret in ("alice", "s3cr3t", "t0k3n", "b34r3r"):
        assert secret not in out
    assert "http://***:***@10.0.0.1:5000/api" in out
    assert "https://h2/x?token=***&a=1" in out
    assert "https://public.example/docs" in out
    assert "/api/2.0/mlflow/runs/get?run_id=1&access_token=***" in out


def test_redact_obj_and_errors():
    doc = {"tracking": {"tracking_uri": "https://u:s3cr3t@h"}, "n": 3, "l": ["x?sig=s3cr3t"]}
    assert redact_obj(doc) == {
        "tracking": {"tracking_uri": "https://***:***@h"},
        "n": 3,
        "l": ["x?sig=***"],
    }
    err = AverError("server https://u:s3cr3t@h down", fix="retry https://h?token=s3cr3t")
    assert "s3cr3t" not in str(err) and "https://***:***@h" in str(err)
    assert err.fix == "retry https://h?token=***"


def _capture(logger: logging.Logger) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    return handler, stream


def test_filter_redacts_messages_args_and_exceptions():
    logger = logging.getLogger("aver.test_redact.filter")
    logger.propagate = False
    handler, stream = _capture(logger)
    handler.addFilter(RedactingFilter())
    try:
        logger.warning("store %s failed", "http://u:s3cr3t@h:1")
        try:
            raise ConnectionError("Max retries exceeded with url: /api?token=s3cr3t")
        except ConnectionError:
            logger.exception("request to %s", "https://h/?access_token=s3cr3t")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "s3cr3t" not in out
    assert "store http://***:***@h:1 failed" in out and "/api?token=***" in out


def test_installed_redaction_covers_loggers_with_their_own_handlers(caplog):
    """Like MLflow's logger: own handler, no propagation; installed as stage.main does."""
    logger = logging.getLogger("aver.test_redact.own_handler")
    logger.propagate = False
    handler, stream = _capture(logger)
    old_factory = logging.getLogRecordFactory()
    try:
        install_log_redaction()
        install_log_redaction()  # idempotent
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("View run at https://u:s3cr3t@h/#/experiments/1")
        try:
            raise RuntimeError("API request to https://h/x?token=s3cr3t failed")
        except RuntimeError:
            logger.exception("failed")
        late = logging.getLogger("aver.test_redact.created_later")
        with caplog.at_level(logging.INFO, logger=late.name):
            late.info("uri %s", "https://u:s3cr3t@h")
    finally:
        logging.setLogRecordFactory(old_factory)
        logger.removeHandler(handler)
    assert "s3cr3t" not in stream.getvalue() and "s3cr3t" not in caplog.text
    assert "https://***:***@h/#/experiments/1" in stream.getvalue()
    assert "uri https://***:***@h" in caplog.text


def test_stage_main_redacts_logs_and_tracebacks(tmp_path, capsys, caplog):
    from aver.stage import main

    (tmp_path / "params.yaml").write_text("{}\n")

    def stage(params: object) -> None:
        logging.getLogger("aver.test_redact.stage").info("store https://u:s3cr3t@h")
        raise RuntimeError("API request to https://h/api?token=s3cr3t failed")

    old_factory = logging.getLogRecordFactory()
    try:
        with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as stop:
            main("demo", stage, ["--params", str(tmp_path / "params.yaml")])
    finally:
        logging.setLogRecordFactory(old_factory)
        for handler in logging.getLogger().handlers:
            for f in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(f)
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert "RuntimeError: API request to https://h/api?token=*** failed" in err
    assert "s3cr3t" not in err + caplog.text and "store https://***:***@h" in caplog.text

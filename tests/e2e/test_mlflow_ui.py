"""The MLflow UI as a user sees it: `mlflow server` on the demo pipeline's store, in Chromium.

Screenshots are kept under $AVER_TEST_ARTIFACTS (default: this test's tmp dir); their paths are
printed (pytest -s, or -rA) so they can be looked at.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.browser import HeadlessChromium, find_chromium
from tests.support.mlflow_server import mlflow_server as running_mlflow_server

pytestmark = pytest.mark.e2e

EXPERIMENT = "aver-demo"  # {tracking.experiment_prefix}-{data.dataset}
MODEL = "aver-demo"  # the registered model, alias "champion"
SERVER_START_TIMEOUT_S = 60.0
PAGE_TIMEOUT_S = 30.0
NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"

# Run in the page once it shows the run: close the assistant side panel (it narrows the page),
# type a filter into the metric-chart search box (charts below the fold are not rendered), and
# scroll a metric's table cell into view. Each step is skipped when its element is absent.
PAGE_JS = """
(async (opts) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const chat = document.querySelector('button[aria-label="New Chat"]');
  for (let el = chat; el; el = el.parentElement) {
    const close = el.querySelector('button[aria-label="Close"]');
    if (close) { close.click(); break; }
  }
  const search = document.querySelector('input[placeholder="Search metric charts"]');
  if (opts.chartFilter && search) {
    const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
    setValue.call(search, opts.chartFilter);  // as typed: React sees the input event
    search.dispatchEvent(new Event('input', {bubbles: true}));
  }
  await sleep(750);  // the page reflows
  if (opts.scrollTo) {
    const cell = [...document.querySelectorAll('body *')].find(
      (e) => e.children.length === 0 && e.textContent.trim() === opts.scrollTo);
    if (cell) cell.scrollIntoView({block: 'center'});
  }
  return true;
})(%s)
"""


def _page_js(*, chart_filter: str = "", scroll_to: str = "") -> str:
    return PAGE_JS % json.dumps({"chartFilter": chart_filter, "scrollTo": scroll_to})


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    root = os.environ.get("AVER_TEST_ARTIFACTS")
    out = Path(root) / "mlflow_ui" if root else tmp_path / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")  # session scope: set up (and skipped) before demo_pipeline
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "no Chromium found (chromium, chromium-browser or google-chrome on PATH, or "
            "$AVER_CHROMIUM); install it, e.g. `apt-get install chromium`"
        )
    return binary


@pytest.fixture
def mlflow_server(demo_pipeline, venv_env, tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on the demo repo's sqlite store, bound to 127.0.0.1; its base URL."""
    repo, _ = demo_pipeline
    with running_mlflow_server(
        repo / "mlruns.db",
        repo / "mlartifacts",
        cwd=tmp_path,
        log_path=tmp_path / "mlflow-server.log",
        env=venv_env,
        timeout_s=SERVER_START_TIMEOUT_S,
    ) as url:
        yield url


def _metric_cell(key: str) -> re.Pattern[str]:
    """The metric's name followed by a number: a table row, or a chart card and its bar."""
    return re.compile(rf"(?<![\w.]){re.escape(key)}\s+{NUMBER}")


def _shown(text: str, key: str) -> float:
    match = _metric_cell(key).search(text)
    assert match, f"no value shown next to {key!r} in:\n{text[:3000]}"
    return float(match.group(1))


def test_mlflow_ui_shows_the_train_run_and_its_metrics(
    chromium, demo_pipeline, mlflow_server, artifacts_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # MlflowClient talks to loopback
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, f"experiment {EXPERIMENT} is not served by {mlflow_server}"
    runs = client.search_runs([exp.experiment_id])
    parents = [
        r
        for r in runs
        if r.data.tags.get("aver.stage") == "train" and "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert folds, "no fold run nested under the train run"
    fold = min(folds, key=lambda r: r.info.run_name)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == parent.info.run_id

    base = f"{mlflow_server}/#/experiments/{exp.experiment_id}"
    shots = {
        "experiment": artifacts_dir / "mlflow_experiment.png",
        "run": artifacts_dir / "mlflow_train_run.png",
        "fold": artifacts_dir / "mlflow_fold_run.png",
    }
    with HeadlessChromium(chromium, tmp_path / "chromium-profile") as browser:
        try:
            # The runs list in chart mode (the table hides metric columns until picked).
            exp_text = browser.render(
                f"{base}/runs?compareRunsMode=CHART",
                [EXPERIMENT, parent.info.run_name, "Model metrics"],
                shots["experiment"],
                script=_page_js(chart_filter="val_uar_mean"),
                expect_after=[_metric_cell("val_uar_mean")],
                timeout_s=PAGE_TIMEOUT_S,
            )
            run_text = browser.render(
                f"{base}/runs/{parent.info.run_id}",
                [
                    parent.info.run_id,
                    parent.info.run_name,
                    fold.info.run_name,  # listed as its child run
                    _metric_cell("val_uar_mean"),
                    re.compile(rf"Registered models\s+{MODEL}\s+v{champion.version}\b"),
                ],
                shots["run"],
                script=_page_js(scroll_to="val_uar_mean"),
                timeout_s=PAGE_TIMEOUT_S,
            )
            fold_text = browser.render(
                f"{base}/runs/{fold.info.run_id}",
                [
                    fold.info.run_id,
                    fold.info.run_name,
                    parent.info.run_name,  # its parent run
                    _metric_cell("best_val_uar"),
                    _metric_cell("val_uar"),
                ],
                shots["fold"],
                script=_page_js(scroll_to="best_val_uar"),
                timeout_s=PAGE_TIMEOUT_S,
            )
        finally:
            for name, path in shots.items():
                if path.is_file():
                    print(f"MLflow UI screenshot ({name}): {path}")

    # The chart card shows the run's bar labelled with the value, rounded to 2 decimals.
    assert parent.info.run_name in exp_text
    assert _shown(exp_text, "val_uar_mean") == pytest.approx(
        parent.data.metrics["val_uar_mean"], abs=0.0051
    )
    # Run pages list the metrics with their full values.
    for text, run, key in [
        (run_text, parent, "val_uar_mean"),
        (fold_text, fold, "best_val_uar"),
        (fold_text, fold, "val_uar"),  # the last epoch's value
    ]:
        assert _shown(text, key) == pytest.approx(run.data.metrics[key], abs=1e-6), key
    for path in shots.values():
        assert path.stat().st_size > 10_000, f"{path} looks blank"

"""The stage list lives once, in aver.cli.STAGES: dvc.yaml and stages/*.py follow it."""

from __future__ import annotations

import importlib

import pytest
import yaml

from aver.cli import STAGES


def test_dvc_yaml_stages_are_the_cli_stages_in_order(repo_root):
    dvc = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    assert list(dvc["stages"]) == list(STAGES)


@pytest.mark.parametrize("name", list(STAGES))
def test_each_stage_script_runs_the_cli_stage_module(repo_root, name):
    module, _ = STAGES[name]
    script = (repo_root / "stages" / f"{name}.py").read_text()
    assert f"from {module} import run" in script and f'main("{name}", run)' in script
    dvc = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    assert f"stages/{name}.py" in dvc["stages"][name]["cmd"]
    assert callable(importlib.import_module(module).run)

"""aver.tracking.runs is the one door to MLflow's tracking API (the pyfunc flavour aside)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "aver"
# The model flavour API (mlflow.pyfunc, mlflow.models) lives with the pyfunc wrapper.
ALLOWED = {"tracking/runs.py", "tracking/pyfunc.py", "tracking/pyfunc_entry.py"}


def _imports_mlflow(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
            lines.append(node.lineno)
    return lines


def test_only_the_tracking_facade_imports_mlflow():
    offenders = {
        f"{rel}:{line}"
        for path in SRC.rglob("*.py")
        if (rel := path.relative_to(SRC).as_posix()) not in ALLOWED
        for line in _imports_mlflow(path)
    }
    assert not offenders, f"import MLflow through aver.tracking.runs instead: {sorted(offenders)}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from mlflow.tracking import MlflowClient\n    import mlflow\n")
    assert _imports_mlflow(mod) == [2, 3]

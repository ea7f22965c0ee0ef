"""Two clones on one machine share the cached venv, yet each runs its own code.

Clone B carries an edit of `aver/stage.py` (imported only by a stage run) that announces
itself. Each clone's stage script,
`aver` command and `dvc exp run --temp` must report (the stage's `code ...` log line) and run
(the edit's output) the code of the workspace they run in, whichever clone ran setup last.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.pipeline import TINY, make_pipeline_repo

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MARK = "aver code of clone B"


def _shared_cache() -> Path:
    """The venv cache this checkout's setup used (the clones reuse it: seconds, offline)."""
    marker = REPO / ".venv" / "aver-shared-venv"
    if not marker.is_file():
        pytest.skip(f"{marker} is absent: run scripts/setup.sh in this checkout first")
    return Path(marker.read_text().strip()).parent


def _env(clone: Path, cache: Path) -> dict[str, str]:
    """A user's shell in `clone` with its .venv activated: no PYTHONPATH workaround."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["AVER_VENV_CACHE"] = str(cache)
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(var, None)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{out}"
    return out


def _code_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "] code " in line]
    assert lines, f"no code line in:\n{output}"
    return lines[0]


@pytest.fixture(scope="module")
def clones(tmp_path_factory) -> dict[str, tuple[Path, dict[str, str]]]:
    cache = _shared_cache()
    root = tmp_path_factory.mktemp("clones")
    made = {}
    for name in ("A", "B"):
        clone = make_pipeline_repo(root / name, TINY)
        made[name] = (clone, _env(clone, cache))
    stage = made["B"][0] / "src" / "aver" / "stage.py"
    stage.write_text(stage.read_text() + f"\nprint({MARK!r}, file=sys.stderr)\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    _run([*git, "commit", "-qam", "clone B's edit"], made["B"][0], made["B"][1])
    # A first, then B: with one venv pointing at the last clone set up, A would run B's code.
    for clone, env in made.values():
        _run(["bash", "scripts/setup.sh"], clone, env, timeout=600)
    return made


@pytest.mark.parametrize("name", ["A", "B"])
def test_stage_script_and_aver_command_run_their_clones_code(clones, name):
    clone, env = clones[name]
    for cmd in (["python", "stages/download.py"], ["aver", "download"]):
        out = _run(cmd, clone, env)
        assert f"code {clone / 'src' / 'aver'} (git " in _code_line(out), out
        assert (MARK in out) == (name == "B"), out


def test_aver_command_runs_the_code_of_the_workspace_it_is_started_in(clones):
    (clone_a, env_a), (clone_b, _) = clones["A"], clones["B"]
    out = _run([str(clone_b / ".venv" / "bin" / "aver"), "download"], clone_a, env_a)
    assert f"code {clone_a / 'src' / 'aver'} (git " in _code_line(out)
    assert MARK not in out


@pytest.mark.parametrize("name", ["A", "B"])
def test_dvc_exp_run_temp_runs_the_experiment_workspace_code(clones, name):
    clone, env = clones[name]
    out = _run(["dvc", "exp", "run", "--temp", "download"], clone, env, timeout=600)
    line = _code_line(out)
    exps = clone / ".dvc" / "tmp" / "exps"
    assert f"code {exps}" in line and line.split()[2].endswith("/src/aver"), line
    assert (MARK in out) == (name == "B"), out

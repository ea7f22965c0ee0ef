"""Which code runs: the aver workspace around a directory and the code actually imported.

Every clone (and every DVC experiment workspace under `.dvc/tmp/exps/`) runs its own
`src/aver`: the stage scripts put their workspace's `src` first (stages/workspace_src.py), the
`aver` command re-executes itself with the code of the workspace it is started in, and each
stage logs, and each MLflow run tags, the path and git commit of the code that ran.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aver

REEXEC_GUARD = "AVER_WORKSPACE_REEXEC"


@dataclass(frozen=True)
class CodeInfo:
    """Where the running `aver` package lives and which git commit holds it."""

    path: str
    commit: str
    dirty: bool

    def describe(self) -> str:
        state = ", uncommitted changes" if self.dirty else ""
        return f"code {self.path} (git {self.commit}{state})"

    def tags(self) -> dict[str, str]:
        return {
            "aver.code_path": self.path,
            "aver.code_commit": self.commit,
            "aver.code_dirty": str(self.dirty),
        }


def find_workspace(start: str | Path) -> Path | None:
    """The nearest directory at or above `start` holding dvc.yaml and src/aver, else None."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "src" / "aver" / "__init__.py").is_file():
            return folder
    return None


def package_dir() -> Path:
    """The directory of the imported `aver` package."""
    return Path(aver.__file__).resolve().parent


def git_state(cwd: str | Path) -> tuple[str, bool]:
    """(HEAD commit or "unknown", whether tracked files under `cwd` have uncommitted changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown", False
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


@functools.cache
def code_info() -> CodeInfo:
    """Path and git state of the code this process runs (computed once)."""
    path = package_dir()
    commit, dirty = git_state(path)
    return CodeInfo(str(path), commit, dirty)


def foreign_workspace(cwd: str | Path) -> Path | None:
    """The workspace around `cwd` when the imported aver is not its code, else None."""
    workspace = find_workspace(cwd)
    if workspace is None or package_dir() == (workspace / "src" / "aver").resolve():
        return None
    return workspace


def reexec_with(workspace: Path, argv: list[str]) -> None:
    """Replace this process by `python -m aver.cli ARGV` importing `workspace`'s code."""
    src = str(workspace / "src")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env[REEXEC_GUARD] = src
    os.execve(sys.executable, [sys.executable, "-m", "aver.cli", *argv], env)


def run_own_code(argv: list[str]) -> None:
    """Re-execute the `aver` command when the cwd's workspace holds other code than this one."""
    workspace = foreign_workspace(Path.cwd())
    if workspace is not None and os.environ.get(REEXEC_GUARD) != str(workspace / "src"):
        reexec_with(workspace, argv)

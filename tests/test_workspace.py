"""Finding the workspace around a directory and whether the imported aver is its code."""

from __future__ import annotations

from pathlib import Path

from aver import workspace

REPO = Path(__file__).resolve().parents[1]


def _fake_workspace(root: Path) -> Path:
    (root / "src" / "aver").mkdir(parents=True)
    (root / "src" / "aver" / "__init__.py").write_text("")
    (root / "dvc.yaml").write_text("stages: {}\n")
    return root


def test_find_workspace_walks_up_to_dvc_yaml_and_src_aver(tmp_path: Path):
    ws = _fake_workspace(tmp_path / "clone")
    (ws / "data" / "raw").mkdir(parents=True)
    assert workspace.find_workspace(ws / "data" / "raw") == ws.resolve()
    assert workspace.find_workspace(tmp_path) is None


def test_foreign_workspace_is_none_for_this_checkout_and_names_another(tmp_path: Path):
    assert workspace.foreign_workspace(REPO / "tests") is None
    other = _fake_workspace(tmp_path / "other")
    assert workspace.foreign_workspace(other) == other.resolve()


def test_code_info_describes_path_and_commit():
    info = workspace.code_info()
    assert info.path == str(REPO / "src" / "aver")
    text = info.describe()
    assert text.startswith(f"code {info.path} (git {info.commit}")


def test_git_state_of_this_checkout_and_of_no_repo():
    commit, _ = workspace.git_state(REPO)
    assert len(commit) == 40 and all(c in "0123456789abcdef" for c in commit)
    assert workspace.git_state("/")[0] == "unknown"

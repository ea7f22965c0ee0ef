"""aver.progress: tqdm on a terminal, plain lines (no carriage returns) off it or under CI."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aver import progress
from aver.progress import PlainBar
from tests.support.pty_run import run_in_pty

REPO = Path(__file__).resolve().parents[1]


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CI", "AVER_PROGRESS", "AVER_PROGRESS_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_style_bars_on_a_tty_lines_otherwise_or_under_ci(clean_env):
    assert progress.style(_Stream(tty=True)) == "bar"
    assert progress.style(_Stream(tty=False)) == "lines"
    clean_env.setenv("CI", "true")
    assert progress.style(_Stream(tty=True)) == "lines"
    clean_env.setenv("AVER_PROGRESS", "bar")
    assert progress.style(_Stream(tty=False)) == "bar"
    clean_env.setenv("AVER_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="AVER_PROGRESS"):
        progress.style()


def test_plain_bar_prints_every_tenth_and_a_final_line(clean_env):
    out = _Stream(tty=False)
    bar = PlainBar(total=20, desc="align", unit="clip", file=out, every_s=1e9)
    for _ in range(20):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10  # 10%, 20%, ... 100%; close adds nothing new
    assert lines[0].startswith("align: 2/20 clip (10%)")
    assert lines[-1].startswith("align: 20/20 clip (100%)")


def test_transient_bar_prints_only_timed_lines(clean_env):
    quiet, timed = _Stream(tty=False), _Stream(tty=False)
    for stream, every in ((quiet, 1e9), (timed, 0.0)):
        bar = PlainBar(
            range(5), desc="epoch 1", unit="batch", leave=False, file=stream, every_s=every
        )
        assert list(bar) == [0, 1, 2, 3, 4]
    assert quiet.getvalue() == ""
    assert len(timed.getvalue().splitlines()) == 5


def test_each_update_is_one_report_line(clean_env):
    out = _Stream(tty=False)
    bar = PlainBar(total=60, initial=2, desc="train fold 0", unit="epoch", each=True, file=out)
    bar.set_postfix({"loss": "1.230", "val_uar": "0.410", "clips/s": "412"})
    bar.update(1)
    bar.close()
    assert out.getvalue() == "train fold 0 epoch 3/60: loss 1.230 val_uar 0.410 clips/s 412\n"


def test_disabled_bar_prints_nothing(clean_env):
    out = _Stream(tty=False)
    bar = PlainBar(total=3, desc="x", file=out, disable=True, each=True)
    bar.update(3)
    bar.close()
    assert out.getvalue() == "" and bar.n == 3


SNIPPET = "from aver.progress import bar\nfor _ in bar(range(50), desc='work'):\n    pass\n"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "AVER_PROGRESS")}
    return {**env, "PYTHONPATH": str(REPO / "src"), **extra}


def test_piped_output_has_no_carriage_returns():
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    assert "work: 50/50 it (100%)" in done.stderr


def test_a_terminal_gets_a_bar_unless_ci_is_set():
    drawn = run_in_pty([sys.executable, "-c", SNIPPET], env=_env(), timeout=60)
    assert "\r" in drawn and "50/50" in drawn and "|" in drawn
    plain = run_in_pty([sys.executable, "-c", SNIPPET], env=_env(CI="1"), timeout=60)
    assert "\r" not in plain.replace("\r\n", "\n")
    assert "work: 50/50 it (100%)" in plain

"""`aver predict` as a user runs it (a fresh `python -m aver.cli` process, real ffmpeg, real
H.264 videos, a random-weight model file): many files per call, the rows, the exit code, and
what a call imports (no matplotlib, MLflow, Ray, torchvision or pandas for a local model
without --timeline)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.model_files import demo_clips, write_model_file

REPO = Path(__file__).resolve().parents[2]
# what a local model without --timeline never imports (seconds of start-up between them)
HEAVY = ("matplotlib", "mlflow", "ray", "torchvision", "facenet_pytorch", "pandas")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict-cli")
    clips = demo_clips(tmp / "videos", duration_s=2.0)
    (tmp / "videos" / "notes.mp4").write_text("meeting notes, not a video\n")
    return tmp, clips, write_model_file(tmp / "m.pt")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), **extra}


def _aver_predict(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aver.cli", "predict", *args],
        cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_directory_and_files_in_one_call(setup):
    """Every media file of the directory (sorted) then the files named: one row each on
    stdout and in --output; a file that fails is recorded with its error, the others are
    scored, and the exit code says one failed."""
    tmp, _, model = setup
    out = tmp / "results.jsonl"
    proc = _aver_predict(
        tmp, "videos", "absent.mp4", "--model", str(model), "--output", str(out), "--json"
    )
    assert proc.returncode == 1, proc.stderr
    names = ["angry", "happy", "neutral", "notes", "sad"]
    expected = [f"videos/{n}.mp4" for n in names] + ["absent.mp4"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == expected
    assert [json.loads(line) for line in proc.stdout.splitlines()] == rows  # stdout: the rows
    good = [r for r in rows if not r["error"]]
    assert len(good) == 4
    for r in good:
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert r["n_windows"] == 1 and r["modalities"] == ["audio", "video"]
    assert "not_media" in rows[3]["error"] and "Fix:" in rows[3]["error"]
    assert rows[5]["error"] == "absent.mp4: file not found Fix: check the path"
    err = proc.stderr.splitlines()
    # off a terminal, one progress line per file, and the failures counted at the end
    assert [line for line in err if line.startswith("[predict] 3/6 videos/neutral.mp4")]
    assert err[-1] == "aver predict: error: 2 file(s) could not be scored"
    assert "\r" not in proc.stderr


def test_the_same_answer_one_file_at_a_time(setup):
    """A file scored in a batch gets the probabilities it gets alone (the single-file JSON is
    today's), and a call without failures exits 0 with a CSV of every file."""
    tmp, clips, model = setup
    alone = _aver_predict(tmp, str(clips["sad"]), "--model", str(model), "--json")
    assert alone.returncode == 0, alone.stderr
    doc = json.loads(alone.stdout)
    assert doc["aggregate"] == "mean of window probabilities" and "windows" in doc
    out = tmp / "two.csv"
    both = [str(clips["happy"]), str(clips["sad"])]
    proc = _aver_predict(tmp, *both, "--model", str(model), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == both
    assert [float(rows[1][f"p_{c}"]) for c in doc["probabilities"]] == pytest.approx(
        list(doc["probabilities"].values()), abs=1e-5
    )
    assert rows[1]["label"] == doc["prediction"] and rows[1]["error"] == ""
    assert [line.split(": ")[0] for line in proc.stdout.splitlines()] == both  # one line each


def test_bad_arguments_fail_before_the_model_loads(setup):
    tmp, clips, _ = setup
    proc = _aver_predict(tmp, str(clips["sad"]), "--output", "r.txt", "--model", "absent.pt")
    assert proc.returncode == 1 and "results.csv or results.jsonl" in proc.stderr
    proc = _aver_predict(tmp, "videos", "--timeline", "t.png", "--model", "absent.pt")
    assert proc.returncode == 1 and "pass one video with --timeline" in proc.stderr
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    proc = _aver_predict(tmp, str(empty), "--model", "absent.pt")
    assert proc.returncode == 1 and "no media files" in proc.stderr


_PROBE = """
import sys, torch
from aver.cli import main
try:
    main(sys.argv[1:])
finally:
    loaded = [m for m in {heavy!r} if m in sys.modules]
    print("PROBE", {{"loaded": loaded, "threads": torch.get_num_threads()}}, file=sys.stderr)
"""


def _probe(cwd: Path, *args: str, **env: str) -> dict:
    code = _PROBE.format(heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code, "predict", *args],
        cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stderr.split("PROBE ")[1].splitlines()[0])


def test_a_local_model_imports_no_plotting_tracking_or_ray(setup):
    """A real predict on a model file loads none of matplotlib, MLflow, Ray, torchvision,
    facenet-pytorch or pandas (the start-up a user waits for); --timeline loads matplotlib.
    The call sets torch's threads by the thread policy (aver.threads): every core for one
    file; for several, one core is left to the extraction of the next file, which runs beside
    the scoring."""
    tmp, clips, model = setup
    got = _probe(tmp, str(clips["happy"]), "--model", str(model), AVER_CORES="2")
    assert got == {"loaded": [], "threads": 2}
    both = [str(clips["happy"]), str(clips["sad"])]
    got = _probe(tmp, *both, "--model", str(model), "--json", AVER_CORES="2")
    assert got == {"loaded": [], "threads": 1}
    png = tmp / "t.png"
    got = _probe(tmp, str(clips["happy"]), "--model", str(model), "--timeline", str(png))
    assert got["loaded"] == ["matplotlib"] and png.is_file()

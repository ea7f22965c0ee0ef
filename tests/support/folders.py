"""Folder datasets for tests: WAVs of the demo clips' sound and the CSV listing them."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from aver.config import DemoConfig
from aver.datasets.demo import generate
from aver.datasets.ravdess import parse_ravdess_name
from aver.media.ffmpeg import ffmpeg_exe


def wav_folder(tmp: Path) -> Path:
    """WAVs of the demo clips' sound (ffmpeg -vn) and their CSV; 3 speakers x 4 classes."""
    demo = generate(tmp / "demo", DemoConfig(speakers=3, clips_per_class=1, duration_s=1.0))
    media = tmp / "wavs"
    media.mkdir()
    rows = []
    for src in demo:
        wav = media / f"{src.stem}.wav"
        subprocess.run(
            [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(src), "-vn", str(wav)],
            check=True,
        )
        info = parse_ravdess_name(src.name)
        rows.append((wav.name, info.label, src.stem.rsplit("-", 1)[-1]))
    table = media / "clips.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "speaker"])
        writer.writerows(rows)
    return table

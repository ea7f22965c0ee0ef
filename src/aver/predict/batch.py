"""Many files in one `aver predict` call: which files, one result row each, the CSV/JSONL output.

`media_files` expands the command line (files as given; a directory's media files, sorted, its
subdirectories with `recursive`). Each file gives one row (`prediction_row`, or `failed_row`
with the error when it could not be scored): path, label, the class probabilities, windows
scored, modalities, notes, error. `RowWriter` writes the rows to `--output` (`.csv`: one
`p_<class>` column per class; `.jsonl`: one JSON object a line), atomically when the call ends.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from aver.errors import ConfigError, DataError
from aver.predict.result import Prediction, scored

# what a directory is searched for (a file named on the command line is tried whatever its name)
MEDIA_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".flv", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp",
)  # fmt: skip
OUTPUT_FORMATS = (".csv", ".jsonl")


def media_files(paths: Sequence[str | Path], *, recursive: bool = False) -> list[Path]:
    """The files to score: each file as given, each directory's media files (MEDIA_SUFFIXES,
    sorted; subdirectories too with `recursive`), in command-line order, without repeats.
    A path that does not exist is kept (its row records the error)."""
    out: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = given.rglob("*") if recursive else given.iterdir()
            media = sorted(p for p in found if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            if not media:
                raise DataError(
                    f"no media files ({', '.join(MEDIA_SUFFIXES)}) in the directory"
                    + ("" if recursive else " (subdirectories not searched)"),
                    path=given,
                    fix="pass a directory of videos" + ("" if recursive else " or --recursive"),
                )
            out.extend(media)
        else:
            out.append(given)
    return list(dict.fromkeys(out))


def prediction_row(pred: Prediction) -> dict[str, Any]:
    """One scored file: path, label, probabilities, windows scored, inputs used, notes."""
    return {
        "path": pred.video,
        "label": pred.label,
        "probabilities": {c: float(p) for c, p in zip(pred.classes, pred.probs)},
        "n_windows": len(scored(pred.windows)),
        "modalities": list(pred.modalities),
        "duration_s": float(pred.duration_s),
        "detection_rate": float(pred.detection_rate),
        "notes": list(pred.notes),
        "error": "",
    }


def failed_row(path: str | Path, error: str) -> dict[str, Any]:
    """A file that could not be scored: its path and the error (one line)."""
    return {
        "path": str(path), "label": "", "probabilities": {}, "n_windows": 0, "modalities": [],
        "duration_s": None, "detection_rate": None, "notes": [], "error": error,
    }  # fmt: skip


def output_format(target: str | Path) -> str:
    """ ".csv" or ".jsonl" from the output file's name; ConfigError otherwise."""
    suffix = Path(target).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ConfigError(
            f"--output {target}: unknown format {suffix or '(no suffix)'}",
            fix="name the output file results.csv or results.jsonl",
        )
    return suffix


def csv_record(row: dict[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    """`row` flattened for CSV: one p_<class> column per class, lists joined."""
    probs = row["probabilities"]
    return {
        "path": row["path"],
        "label": row["label"],
        **{f"p_{c}": "" if c not in probs else f"{probs[c]:.6f}" for c in classes},
        "n_windows": row["n_windows"],
        "modalities": "+".join(row["modalities"]),
        "duration_s": "" if row["duration_s"] is None else f"{row['duration_s']:.3f}",
        "detection_rate": "" if row["detection_rate"] is None else f"{row['detection_rate']:.3f}",
        "notes": "; ".join(row["notes"]),
        "error": row["error"],
    }


class RowWriter:
    """Rows to `target` (.csv or .jsonl) as they come, in a temp file renamed onto `target`
    when the writer closes without an error (aver.io.atomic); `target` None: nothing written."""

    def __init__(self, target: str | Path | None, classes: Sequence[str]) -> None:
        self.target = None if target is None else Path(target)
        self.format = "" if target is None else output_format(target)
        self.classes = list(classes)
        self._stack = ExitStack()
        self._file: IO[str] | None = None
        self._csv: csv.DictWriter | None = None

    def __enter__(self) -> RowWriter:
        if self.target is not None:
            from aver.io.atomic import atomic_path

            tmp = self._stack.enter_context(atomic_path(self.target))
            self._file = self._stack.enter_context(open(tmp, "w", newline="", encoding="utf-8"))
            if self.format == ".csv":
                fields = list(csv_record(failed_row("", ""), self.classes))
                self._csv = csv.DictWriter(self._file, fieldnames=fields)
                self._csv.writeheader()
        return self

    def write(self, row: dict[str, Any]) -> None:
        if self._file is None:
            return
        if self._csv is not None:
            self._csv.writerow(csv_record(row, self.classes))
        else:
            self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)  # type: ignore[arg-type]

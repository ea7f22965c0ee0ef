"""The user's own labelled videos, listed in a CSV: `path,label,speaker` (header required).

`path` is relative to `data.folder.media_dir` (default: the CSV's directory) or absolute; the
media stays where it is and nothing is downloaded. Classes are the sorted unique labels. Every
row is validated: a missing CSV or column, an empty field or a duplicate path raises DataError
naming the CSV, the row and the fix. Listed files that do not exist also raise DataError (the
first few are named) rather than being skipped: a silently shrunken dataset would change results
without notice. `clip_id` is the file stem (characters outside [A-Za-z0-9._-] become '_'), made
unique with the file's parent folders when stems collide. `Sample.path` is relative to
`data.root` when the file lies under it, else absolute.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aver.config import FolderConfig, Params
from aver.datasets.base import DatasetSpec, Sample
from aver.errors import ConfigError, DataError

COLUMNS = ("path", "label", "speaker")
MAX_LISTED = 5
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FolderRow:
    """One validated CSV row; `file` is absolute."""

    row: int  # 1-based data row (the header is line 1, so this row is on line row + 1)
    file: Path
    label: str
    speaker: str


def csv_path(cfg: FolderConfig) -> Path:
    if not cfg.csv:
        raise ConfigError(
            "data.folder.csv is not set: the folder dataset reads a CSV of your videos",
            fix="set data.folder.csv in params.yaml to a CSV with header path,label,speaker",
        )
    return Path(cfg.csv).expanduser()


def read_folder_csv(path: str | Path, media_dir: str | Path | None = None) -> list[FolderRow]:
    """Read and validate the CSV; relative paths resolve against `media_dir` or the CSV's dir."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "folder dataset CSV not found",
            path=path,
            fix="create it (header path,label,speaker; one row per video) or fix data.folder.csv",
        )
    base = Path(media_dir).expanduser() if media_dir else path.parent
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"missing column(s) {', '.join(missing)} (header is {','.join(header) or 'empty'})",
                path=path,
                fix="make the first line exactly: path,label,speaker",
            )
        reader.fieldnames = header
        rows: list[FolderRow] = []
        for i, raw in enumerate(reader, start=1):
            values = {c: (raw.get(c) or "").strip() for c in COLUMNS}
            empty = [c for c in COLUMNS if not values[c]]
            if empty:
                raise DataError(
                    f"row {i} (line {i + 1}): empty {', '.join(empty)}",
                    path=path,
                    fix=f"fill in {', '.join(empty)} on line {i + 1} or delete that row",
                )
            file = Path(values["path"]).expanduser()
            file = (file if file.is_absolute() else base / file).resolve()
            rows.append(FolderRow(i, file, values["label"], values["speaker"]))
    if not rows:
        raise DataError("lists no videos", path=path, fix="add one row per video under the header")
    seen: dict[Path, int] = {}
    for r in rows:
        if r.file in seen:
            raise DataError(
                f"row {r.row} (line {r.row + 1}) repeats {r.file} (row {seen[r.file]})",
                path=path,
                fix="list each video once",
            )
        seen[r.file] = r.row
    absent = [r for r in rows if not r.file.is_file()]
    if absent:
        listed = "; ".join(f"row {r.row}: {r.file}" for r in absent[:MAX_LISTED])
        more = f" and {len(absent) - MAX_LISTED} more" if len(absent) > MAX_LISTED else ""
        raise DataError(
            f"{len(absent)} listed file(s) do not exist: {listed}{more}",
            path=path,
            fix=f"correct those paths (relative paths are resolved against {base}; set "
            "data.folder.media_dir to change that) or delete those rows",
        )
    return rows


def clip_ids(files: list[Path]) -> list[str]:
    """Unique, file-name-safe clip ids: the stem; on a collision, parent folders are prepended."""

    def safe(text: str) -> str:
        return _UNSAFE.sub("_", text).strip("_") or "clip"

    ids = [safe(f.stem) for f in files]
    depth = 1
    while len(set(ids)) < len(ids) and depth < 64:
        counts = Counter(ids)
        ids = [
            safe("__".join([*f.parent.parts[-depth:], f.stem])) if counts[i] > 1 else i
            for f, i in zip(files, ids)
        ]
        depth += 1
    counts, seen, out = Counter(ids), Counter(), []
    for i in ids:  # last resort: a counter
        seen[i] += 1
        out.append(i if counts[i] == 1 else f"{i}-{seen[i]}")
    return out


def _relative_or_absolute(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root.resolve()).as_posix()
    except ValueError:
        return file.as_posix()


class FolderDataset(DatasetSpec):
    name = "folder"
    classes = ()
    n_folds = 5

    def class_names(self, params: Params) -> tuple[str, ...]:
        """The sorted unique labels of the CSV."""
        cfg = params.data.folder
        return tuple(sorted({r.label for r in read_folder_csv(csv_path(cfg), cfg.media_dir)}))

    def folds(self, samples: list[Sample]) -> int:
        """n_folds, lowered to the number of speakers (at least 2)."""
        return max(2, min(self.n_folds, len({s.speaker for s in samples})))

    def samples(self, root: Path, params: Params) -> list[Sample]:
        """One sample per CSV row, media left in place, sorted by clip_id."""
        cfg = params.data.folder
        rows = read_folder_csv(csv_path(cfg), cfg.media_dir)
        ids = clip_ids([r.file for r in rows])
        out = [
            Sample(
                clip_id=cid,
                path=_relative_or_absolute(r.file, Path(root)),
                label=r.label,
                speaker=r.speaker,
            )
            for cid, r in zip(ids, rows)
        ]
        return sorted(out, key=lambda s: s.clip_id)

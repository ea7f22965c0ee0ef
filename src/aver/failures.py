"""Failures tables: a clip that cannot be used is recorded with its reason and skipped.

Every stage's `failures.csv` has the columns `clip_id,path,stage,reason`; `path` names the
user's original media file (from the download stage's index.csv, see `source_path`), never an
intermediate such as `video/<clip_id>.mp4`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePath

from aver.contracts import RAW_INDEX
from aver.errors import DataError
from aver.io.atomic import write_csv

COLUMNS = ["clip_id", "path", "stage", "reason"]


@dataclass(frozen=True)
class Failure:
    clip_id: str
    path: str
    stage: str
    reason: str


def source_path(data_root: str | Path, path: str) -> str:
    """An index.csv path as the user finds the file: joined to data.root unless absolute."""
    return path if PurePath(path).is_absolute() else (Path(data_root) / path).as_posix()


def source_paths(data_root: str | Path) -> dict[str, str]:
    """clip_id -> original media file, from `<data_root>/index.csv` ({} when there is none)."""
    try:
        frame = RAW_INDEX.read(data_root, need=("path",))
    except DataError:
        return {}
    return {c: source_path(data_root, p) for c, p in zip(frame["clip_id"], frame["path"])}


def with_sources(failures: list[Failure], sources: Mapping[str, str]) -> list[Failure]:
    """The failures with `path` set to each clip's original file where `sources` knows it."""
    return [replace(f, path=sources.get(f.clip_id, f.path)) for f in failures]


def write_failures(path: str | Path, failures: list[Failure]) -> None:
    """Write the failures table (header only when there are none), sorted by clip_id."""
    rows = sorted((asdict(f) for f in failures), key=lambda r: r["clip_id"])
    import pandas as pd

    write_csv(path, pd.DataFrame(rows, columns=COLUMNS))


def read_failures(path: str | Path) -> list[Failure]:
    path = Path(path)
    if not path.exists():
        return []
    import pandas as pd

    frame = pd.read_csv(path, dtype=str).fillna("")
    return [Failure(**row) for row in frame[COLUMNS].to_dict("records")]


def check_failure_fraction(
    failures: list[Failure], total: int, max_fraction: float, stage: str, table: str | Path
) -> None:
    """Raise DataError when more than `max_fraction` of `total` clips failed, naming some."""
    if total == 0:
        raise DataError(
            f"{stage}: no input clips",
            path=table,
            fix="check the previous stage's outputs (dvc repro)",
        )
    fraction = len(failures) / total
    if fraction > max_fraction:
        worst = "; ".join(f"{f.path}: {f.reason}" for f in failures[:5])
        raise DataError(
            f"{stage}: {len(failures)}/{total} clips failed ({fraction:.0%} > "
            f"{max_fraction:.0%} allowed). First failures: {worst}",
            path=table,
            fix=f"inspect {table}, fix or remove the bad files, or raise "
            f"{stage}.max_failure_fraction in params.yaml",
        )

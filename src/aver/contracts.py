"""Typed readers and writers of the files passed between stages (docs/data-contracts.md).

Every producer and consumer in `aver` goes through these; a missing or malformed file is a
`DataError` naming the file and the stage to rerun.

- raw index `data/raw/index.csv` and `dataset.json` (download): `RAW_INDEX`, `DatasetInfo`
- extract manifest `data/interim/manifest.csv` (extract): `MANIFEST`
- face index `data/faces/index.csv` (align): `FACE_INDEX`
- feature index, `meta.json`, `stats.json` under `data/features/` (cache): `FEATURE_INDEX`,
  `read_feature_meta`/`write_feature_meta`, `read_feature_stats`/`write_feature_stats`
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aver.errors import DataError
from aver.io.atomic import write_csv, write_json

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is read: `aver predict` starts without it

# The inputs a dataset's clips have (dataset.json and the feature meta.json `modalities`).
MODALITIES = ("audio", "video")


@dataclass(frozen=True)
class TableContract:
    """A CSV table between stages: its columns, which are text, and the stage that writes it."""

    name: str  # as messages name it, e.g. "extract manifest"
    file: str
    columns: tuple[str, ...]  # every writer gives these, first and in this order
    fix: str  # how to regenerate the file
    text: tuple[str, ...] = ("clip_id",)  # read as str; the others are inferred
    all_text: bool = False  # read every column as str, empty cells as ""
    key: str = "clip_id"  # unique per row

    def path(self, directory: str | Path) -> Path:
        return Path(directory) / self.file

    def read(self, directory: str | Path, need: Iterable[str] | None = None) -> pd.DataFrame:
        """The table, validated: the key and `need` (default: all `columns`) present, the key
        unique. Raises DataError naming the file otherwise."""
        import pandas as pd

        path = self.path(directory)
        if not path.is_file():
            raise DataError(f"{self.name} not found", path=path, fix=self.fix)
        try:
            if self.all_text:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            else:
                frame = pd.read_csv(path, dtype={c: str for c in self.text})
                for c in self.text:  # an empty text field is "" (e.g. no video: video "")
                    if c in frame.columns:
                        frame[c] = frame[c].fillna("")
        except (ValueError, OSError, UnicodeDecodeError) as err:  # ParserError is a ValueError
            raise DataError(f"unreadable {self.name} ({err})", path=path, fix=self.fix) from None
        need = self.columns if need is None else (self.key, *need)
        missing = [c for c in dict.fromkeys(need) if c not in frame.columns]
        if missing:
            raise DataError(f"{self.name} lacks columns {missing}", path=path, fix=self.fix)
        dupes = sorted(frame[self.key][frame[self.key].duplicated()].unique())
        if dupes:
            raise DataError(
                f"duplicate {self.key} values: {dupes[:5]}",
                path=path,
                fix=f"{self.key} values must be unique; {self.fix}",
            )
        return frame

    def write(self, directory: str | Path, frame: pd.DataFrame) -> Path:
        """Write atomically, `columns` first (extra columns after, in their order)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: the table to write lacks columns {missing}")
        extra = [c for c in frame.columns if c not in self.columns]
        path = self.path(directory)
        write_csv(path, frame[[*self.columns, *extra]])
        return path


RAW_INDEX = TableContract(
    "raw index",
    "index.csv",
    ("clip_id", "path", "label", "speaker"),
    fix="run the download stage first (dvc repro download)",
    all_text=True,
)
_MANIFEST_COLUMNS = (
    "clip_id", "audio", "video", "duration_s", "fps", "n_frames", "width", "height",
    "sample_rate", "src_width", "src_height", "src_fps", "rotation", "src_format",
)  # fmt: skip
MANIFEST = TableContract(
    "extract manifest",
    "manifest.csv",
    _MANIFEST_COLUMNS,
    fix="run the extract stage first (dvc repro extract)",
    text=("clip_id", "audio", "video", "src_format"),
)
FACE_INDEX = TableContract(
    "aligned-face index",
    "index.csv",
    ("clip_id", "shard", "offset", "n_frames", "detection_rate", "fps"),
    fix="delete the align output and rerun the stage (dvc repro align)",
    text=("clip_id", "shard"),
)
FEATURE_INDEX = TableContract(
    "feature index",
    "index.csv",
    ("clip_id", "label", "label_idx", "speaker", "fold", "shard", "row"),
    fix="delete the cache directory (cache.out) and rerun the cache stage (dvc repro cache)",
    text=("clip_id", "speaker", "label", "shard"),
)


@dataclass(frozen=True)
class DatasetInfo:
    """`dataset.json`: the class order is the label index order of every later stage."""

    name: str
    classes: list[str]
    n_folds: int = 5
    n_clips: int | None = None
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))

    FILE = "dataset.json"
    FIX = "run the download stage first (dvc repro download)"

    @classmethod
    def read(cls, root: str | Path) -> DatasetInfo:
        path = Path(root) / cls.FILE
        raw = _read_json(path, "dataset.json", cls.FIX)
        try:
            classes = raw["classes"]
            if not isinstance(classes, list) or not classes:
                raise ValueError("classes must be a non-empty list")
            n_clips = raw.get("n_clips")
            return cls(
                name=str(raw["name"]),
                classes=[str(c) for c in classes],
                n_folds=int(raw.get("n_folds", 5)),
                n_clips=None if n_clips is None else int(n_clips),
                modalities=_modalities(raw.get("modalities", list(MODALITIES))),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataError(f"malformed dataset.json ({err!r})", path=path, fix=cls.FIX) from None

    @property
    def has_video(self) -> bool:
        """False for an audio-only dataset (its clips are audio files, or used for their sound)."""
        return "video" in self.modalities

    def write(self, root: str | Path) -> Path:
        path = Path(root) / self.FILE
        write_json(path, asdict(self))
        return path


def _modalities(value: Any) -> list[str]:
    """The `modalities` of dataset.json / meta.json: a non-empty list drawn from MODALITIES."""
    if not isinstance(value, list) or not value or not set(value) <= set(MODALITIES):
        raise ValueError(f"modalities must be a non-empty list of {MODALITIES}, got {value!r}")
    return [m for m in MODALITIES if m in value]


FEATURE_FIX = FEATURE_INDEX.fix
META_KEYS = ("classes", "n_folds", "protocol", "leaky", "arrays")


def feature_modalities(meta: Mapping[str, Any]) -> list[str]:
    """The feature meta's `modalities` (caches written before the key: both)."""
    return _modalities(meta.get("modalities", list(MODALITIES)))


def read_feature_meta(cache_dir: str | Path) -> dict[str, Any]:
    """`meta.json` of a feature cache, with the keys readers rely on (`META_KEYS`)."""
    path = Path(cache_dir) / "meta.json"
    meta = _read_json(path, "cache file", FEATURE_FIX)
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DataError(f"corrupt cache metadata (lacks {missing})", path=path, fix=FEATURE_FIX)
    return meta


def write_feature_meta(cache_dir: str | Path, meta: Mapping[str, Any]) -> Path:
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"feature meta lacks {missing}")
    path = Path(cache_dir) / "meta.json"
    write_json(path, dict(meta))
    return path


def read_feature_stats(cache_dir: str | Path) -> dict[int, dict[str, Any]]:
    """`stats.json`: fold -> its normalisation statistics (aver.features.stats.FoldStats dict)."""
    path = Path(cache_dir) / "stats.json"
    raw = _read_json(path, "cache file", FEATURE_FIX)
    try:
        return {int(k): dict(v) for k, v in raw["folds"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"corrupt cache metadata ({err!r})", path=path, fix=FEATURE_FIX) from None


def write_feature_stats(cache_dir: str | Path, folds: Mapping[str, Mapping[str, Any]]) -> Path:
    path = Path(cache_dir) / "stats.json"
    write_json(path, {"folds": {str(k): dict(v) for k, v in folds.items()}})
    return path


def _read_json(path: Path, what: str, fix: str) -> Any:
    if not path.is_file():
        raise DataError(f"{what} missing", path=path, fix=fix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise DataError(f"corrupt {what} ({err})", path=path, fix=fix) from None

"""The user's own labelled videos, listed in a CSV: `path,label,speaker` (header required).

`path` is relative to `data.folder.media_dir` (default: the CSV's directory) or absolute; the
media stays where it is and nothing is downloaded. Classes are `data.folder.classes` (in that
order) when given, and every label must be one of them exactly; otherwise labels are normalised
(surrounding spaces removed, lower case: " Happy " -> "happy") and the classes are the sorted
unique labels.

Every problem with the listing is a DataError raised up front, in the download stage, naming the
CSV, the row and the fix: a missing CSV or column, a CSV that is not UTF-8, an empty field, a
duplicate path, an unknown label, a path leading outside the media folder (absolute, `..` or a
symlink; allowed with `data.folder.allow_outside_media_dir`), a file that does not exist (with a
hint when its folder holds file names that are not UTF-8), a directory, FIFO or other non-regular
file. Before anything is written (`check_samples`), every class needs at least max(2, K) clips
and the folds need enough speakers (`aver.features.splits.min_units`), K being the number of
folds the cache stage will make. Media that cannot be decoded is not checked here: the extract
stage records it in failures.csv.

A CSV listing only audio files (`AUDIO_SUFFIXES`, e.g. a folder of WAVs), or any CSV with
`data.modality: audio`, is an audio-only dataset (dataset.json `modalities: [audio]`): only the
sound is extracted and only audio models train on it.

Optional columns `group` and/or `sex` give each speaker an attribute (one value per speaker,
checked up front); they land in index.csv and the speaker-independent folds are balanced over
the first of them present (`aver.features.splits.SPEAKER_ATTRIBUTES`).

`clip_id` is the file stem (characters outside [A-Za-z0-9._-] become '_'), made unique with the
file's parent folders when stems collide. `Sample.path` is relative to `data.root` when the file
lies under it, else absolute.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aver.config import FolderConfig, Params
from aver.datasets.base import DatasetSpec, Sample
from aver.errors import ConfigError, DataError
from aver.features.splits import SPEAKER_ATTRIBUTES, fold_count, min_units, speaker_groups

log = logging.getLogger(__name__)

COLUMNS = ("path", "label", "speaker")
# audio files (no video stream): a CSV listing only these is an audio-only dataset
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".wma"})
MAX_LISTED = 5
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RENAME = "rename those files to UTF-8 names (e.g. `convmv -f latin1 -t utf-8 --notest -r DIR`)"


@dataclass(frozen=True)
class FolderRow:
    """One validated CSV row; `file` is absolute and resolved (symlinks followed)."""

    row: int  # 1-based data row (the header is line 1, so this row is on line row + 1)
    file: Path
    label: str
    speaker: str
    written_path: str = ""  # path and label as the CSV has them
    written_label: str = ""
    attributes: tuple[tuple[str, str], ...] = ()  # (column, value) of SPEAKER_ATTRIBUTES given


def csv_path(cfg: FolderConfig) -> Path:
    if not cfg.csv:
        raise ConfigError(
            "data.folder.csv is not set: the folder dataset reads a CSV of your videos",
            fix="set data.folder.csv in params.yaml to a CSV with header path,label,speaker",
        )
    return Path(cfg.csv).expanduser()


def load_rows(cfg: FolderConfig) -> list[FolderRow]:
    """The rows of `data.folder.csv`, read and validated with the folder settings."""
    return read_folder_csv(
        csv_path(cfg),
        cfg.media_dir,
        classes=cfg.classes,
        allow_outside=cfg.allow_outside_media_dir,
    )


def read_folder_csv(
    path: str | Path,
    media_dir: str | Path | None = None,
    *,
    classes: list[str] | None = None,
    allow_outside: bool = False,
) -> list[FolderRow]:
    """Read and validate the CSV; relative paths resolve against `media_dir` or the CSV's dir."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "folder dataset CSV not found",
            path=path,
            fix="create it (header path,label,speaker; one row per video) or fix data.folder.csv",
        )
    base = Path(media_dir).expanduser() if media_dir else path.parent
    reader = csv.DictReader(io.StringIO(read_utf8(path), newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)} (header is {','.join(header) or 'empty'})",
            path=path,
            fix="make the first line exactly: path,label,speaker",
        )
    reader.fieldnames = header
    optional = [c for c in SPEAKER_ATTRIBUTES if c in header]
    rows = [
        _parse_row(i, raw, optional, base, path, normalise=not classes)
        for i, raw in enumerate(reader, start=1)
    ]
    if not rows:
        raise DataError("lists no videos", path=path, fix="add one row per video under the header")
    if classes:
        _check_labels(rows, classes, path)
    seen: dict[Path, int] = {}
    for r in rows:
        if r.file in seen:
            raise DataError(
                f"row {r.row} (line {r.row + 1}) repeats {r.file} (row {seen[r.file]})",
                path=path,
                fix="list each video once",
            )
        seen[r.file] = r.row
    _check_names(rows, path)
    if not allow_outside:
        _check_inside(rows, base, path)
    _check_files(rows, base, path)
    return rows


def _parse_row(
    i: int, raw: dict[str, Any], optional: list[str], base: Path, path: Path, *, normalise: bool
) -> FolderRow:
    """Data row `i` of the CSV at `path`: required fields filled, path resolved against `base`,
    the label normalised (unless classes are given), `optional` attribute columns kept."""
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
    label = normalise_label(values["label"]) if normalise else values["label"]
    attributes = tuple((c, (raw.get(c) or "").strip()) for c in optional)
    return FolderRow(i, file, label, values["speaker"], values["path"], values["label"], attributes)


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file (a BOM is dropped); DataError naming the line if it is not."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"is not UTF-8 text: byte 0x{data[err.start]:02x} on line {line} is not valid UTF-8",
            path=path,
            fix="re-save the CSV as UTF-8 (spreadsheets: 'CSV UTF-8'; or "
            f"`iconv -f latin1 -t utf-8 {path.name} > utf8.csv`) and point data.folder.csv at it",
        ) from None


def normalise_label(label: str) -> str:
    """A label without surrounding whitespace, in lower case (" Happy " -> "happy")."""
    return label.strip().lower()


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more


def _check_labels(rows: list[FolderRow], classes: list[str], path: Path) -> None:
    bad = [r for r in rows if r.label not in classes]
    if bad:
        raise DataError(
            f"{len(bad)} row(s) have a label that is not in data.folder.classes "
            f"({', '.join(classes)}): "
            + _listed([f"row {r.row} (line {r.row + 1}): {r.label!r}" for r in bad]),
            path=path,
            fix="correct those labels (they must match exactly), add them to "
            "data.folder.classes in params.yaml, or delete those rows",
        )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_names(rows: list[FolderRow], path: Path) -> None:
    """Refuse files whose resolved name (e.g. a symlink's target) is not valid UTF-8."""
    bad = [r for r in rows if not _utf8(str(r.file))]
    if bad:
        raise DataError(
            f"{len(bad)} listed file(s) have names that are not valid UTF-8: "
            + _listed([f"row {r.row}: {os.fsencode(r.file)!r}" for r in bad]),
            path=path,
            fix=f"{_RENAME} and list them by those names",
        )


def _check_inside(rows: list[FolderRow], base: Path, path: Path) -> None:
    """Refuse paths that resolve outside `base` (absolute, through `..` or a symlink)."""
    root = base.resolve()
    outside = [r for r in rows if not r.file.is_relative_to(root)]
    if outside:
        raise DataError(
            f"{len(outside)} listed path(s) lead outside the media folder {root}: "
            + _listed([f"row {r.row} (line {r.row + 1}): {_shown(r)}" for r in outside]),
            path=path,
            fix=f"move those files under {root} (absolute paths, '..' and symlinks may not "
            "leave it), set data.folder.media_dir to a folder holding every file, or set "
            "data.folder.allow_outside_media_dir: true in params.yaml",
        )


def _shown(r: FolderRow) -> str:
    """The path as written, and where it leads when that differs."""
    return r.written_path if r.written_path == str(r.file) else f"{r.written_path} -> {r.file}"


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages ("a directory", "a FIFO", ...)."""
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _check_files(rows: list[FolderRow], base: Path, path: Path) -> None:
    """Every listed path must be an existing regular file (no directory, FIFO, device)."""
    absent: list[FolderRow] = []
    odd: list[str] = []
    for r in rows:
        try:
            mode = r.file.stat().st_mode
        except OSError:
            absent.append(r)
            continue
        if not stat.S_ISREG(mode):
            odd.append(f"row {r.row} (line {r.row + 1}): {r.file} {_not_regular(mode)}")
    if odd:
        raise DataError(
            f"{len(odd)} listed path(s) are not video files: {_listed(odd)}",
            path=path,
            fix="list regular media files only: correct those paths or delete those rows",
        )
    if absent:
        hint = _non_utf8_hint(absent)
        raise DataError(
            f"{len(absent)} listed file(s) do not exist: "
            + _listed([f"row {r.row}: {r.file}" for r in absent])
            + hint,
            path=path,
            fix=f"correct those paths (relative paths are resolved against {base}; set "
            "data.folder.media_dir to change that) or delete those rows"
            + (f"; {_RENAME}, then list them by those names" if hint else ""),
        )


def _not_regular(mode: int) -> str:
    """'is a directory' or 'is a FIFO, not a regular file' (sockets, devices alike)."""
    kind = file_kind(mode)
    return f"is {kind}" if stat.S_ISDIR(mode) else f"is {kind}, not a regular file"


def _non_utf8_hint(absent: list[FolderRow]) -> str:
    """A note naming files whose names are not UTF-8 in the folders of missing files."""
    names: list[str] = []
    for folder in sorted({r.file.parent for r in absent}):
        try:
            entries = sorted(os.listdir(os.fsencode(folder)))
        except OSError:
            continue
        for entry in entries:
            try:
                entry.decode("utf-8")
            except UnicodeDecodeError:
                names.append(repr(os.path.join(os.fsencode(folder), entry)))
    if not names:
        return ""
    return (
        f". Their folders hold {len(names)} file name(s) that are not valid UTF-8, which a "
        f"UTF-8 CSV cannot name: {_listed(names)}"
    )


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
    counts, seen, out = Counter(ids), Counter[str](), []
    for i in ids:  # last resort: a counter
        seen[i] += 1
        out.append(i if counts[i] == 1 else f"{i}-{seen[i]}")
    return out


def _relative_or_absolute(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root.resolve()).as_posix()
    except ValueError:
        return file.as_posix()


def check_attributes(samples: list[Sample], csv: Path) -> None:
    """DataError naming the CSV when a speaker's rows disagree on a `group`/`sex` column."""
    for column in SPEAKER_ATTRIBUTES:
        if any(column in s.meta for s in samples):
            speakers, values = [s.speaker for s in samples], [s.meta.get(column) for s in samples]
            speaker_groups(speakers, values, column, path=csv)


def check_counts(
    samples: list[Sample], classes: list[str], *, protocol: str, n_folds: int, csv: Path
) -> None:
    """DataError when the folds lack units (speakers or clips) or a class has too few clips.

    `n_folds` folds need `min_units(n_folds)` units; every class needs max(2, n_folds) clips,
    so that each test fold can hold one.
    """
    unit = "clip" if protocol == "random" else "speaker"
    units = {s.clip_id if unit == "clip" else s.speaker for s in samples}
    need = min_units(n_folds)
    if len(units) < need:
        if len(units) >= min_units(3):
            fix = f"add {unit}s, or set cache.n_folds: {len(units)} (or fewer, at least 3)"
        elif unit == "clip":
            fix = f"list at least {min_units(3)} clips"
        else:
            fix = (
                f"add clips of at least {min_units(3) - len(units)} more speaker(s) "
                f"(speaker-independent folds need {min_units(3)}), or set cache.protocol: random "
                "(clip-level folds: a speaker appears in train and test)"
            )
        raise DataError(
            f"{len(units)} {unit}(s) for {n_folds} folds (cache.protocol: {protocol}): every "
            f"fold needs a test {unit} and 2 training {unit}s, so {n_folds} folds need at least "
            f"{need} {unit}s",
            path=csv,
            fix=fix,
        )
    counts = Counter(s.label for s in samples)
    least = max(2, n_folds)
    few = [c for c in classes if counts[c] < least]
    if few:
        raise DataError(
            f"{len(few)} class(es) have fewer than {least} clips (at least 2, and one per fold "
            f"for {n_folds} folds): " + ", ".join(f"{c!r} {counts[c]}" for c in few),
            path=csv,
            fix="add clips of those classes, delete their rows (and drop them from "
            "data.folder.classes), or lower cache.n_folds in params.yaml",
        )


class FolderDataset(DatasetSpec):
    name = "folder"
    classes = ()
    n_folds = 5

    def class_names(self, params: Params) -> tuple[str, ...]:
        """`data.folder.classes` when given, else the sorted unique (normalised) labels."""
        cfg = params.data.folder
        if cfg.classes:
            return tuple(cfg.classes)
        return tuple(sorted({r.label for r in load_rows(cfg)}))

    def modalities(self, params: Params, samples: list[Sample]) -> tuple[str, ...]:
        """Audio only with `data.modality: audio`, or when every listed file is an audio file
        (by its extension, `AUDIO_SUFFIXES`: a folder of WAVs)."""
        if all(Path(s.path).suffix.lower() in AUDIO_SUFFIXES for s in samples):
            log.info("folder: every listed file is an audio file: an audio-only dataset")
            return ("audio",)
        return super().modalities(params, samples)

    def folds(self, samples: list[Sample]) -> int:
        """n_folds, lowered to the number of speakers (at least 2)."""
        return max(2, min(self.n_folds, len({s.speaker for s in samples})))

    def check_samples(self, samples: list[Sample], classes: list[str], params: Params) -> None:
        """Enough speakers for the folds and enough clips per class (see `check_counts`)."""
        cache = params.cache
        check_counts(
            samples,
            classes,
            protocol=cache.protocol,
            n_folds=fold_count(cache.protocol, cache.n_folds, self.folds(samples)),
            csv=csv_path(params.data.folder),
        )
        check_attributes(samples, csv_path(params.data.folder))

    def samples(self, root: Path, params: Params) -> list[Sample]:
        """One sample per CSV row, media left in place, sorted by clip_id."""
        cfg = params.data.folder
        rows = load_rows(cfg)
        _log_classes(rows, cfg)
        ids = clip_ids([r.file for r in rows])
        out = [
            Sample(
                clip_id=cid,
                path=_relative_or_absolute(r.file, Path(root)),
                label=r.label,
                speaker=r.speaker,
                meta=dict(r.attributes),
            )
            for cid, r in zip(ids, rows)
        ]
        return sorted(out, key=lambda s: s.clip_id)

    def external_inputs(self, root: Path, params: Params, samples: list[Sample]) -> dict[str, Path]:
        """The CSV (`dataset.csv`) and every listed file (`media/<clip_id><ext>`)."""
        media = {f"media/{s.clip_id}{Path(s.path).suffix}": root / s.path for s in samples}
        return {"dataset.csv": csv_path(params.data.folder), **media}


def _log_classes(rows: list[FolderRow], cfg: FolderConfig) -> None:
    """INFO: the classes and their clip counts (and which spellings normalisation merged)."""
    counts = Counter(r.label for r in rows)
    listed = ", ".join(f"{c} {counts[c]}" for c in (cfg.classes or sorted(counts)))
    if cfg.classes:
        log.info("folder dataset: classes from data.folder.classes: %s", listed)
        return
    merged = sorted({(r.written_label, r.label) for r in rows if r.written_label != r.label})
    log.info(
        "folder dataset: %d classes from the labels of %s (spaces trimmed, lower case; set "
        "data.folder.classes to fix the list): %s%s",
        len(counts),
        cfg.csv,
        listed,
        "; normalised: " + ", ".join(f"{w!r} -> {n!r}" for w, n in merged) if merged else "",
    )

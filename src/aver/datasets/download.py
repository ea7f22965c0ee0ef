"""The download stage: fetch and verify the dataset's files, extract archives, write the index.

Outputs in `data.root` (see docs/data-contracts.md): the media in its native layout,
`index.csv` (clip_id,path,label,speaker + dataset columns, sorted by clip_id), `dataset.json`
({name, classes, n_folds, n_clips, modalities}) and, for inputs outside `data.root` (a folder
dataset), `inputs.csv` and the links DVC hashes (aver.datasets.inputs).
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import pandas as pd

from aver.config import DownloadConfig, Params
from aver.contracts import RAW_INDEX, DatasetInfo
from aver.datasets import inputs
from aver.datasets.base import DatasetSpec, Sample, Source
from aver.errors import AverError, DataError, DownloadError
from aver.io.archives import safe_extract
from aver.io.atomic import remove_stale_temps
from aver.io.http import download
from aver.io.lockfile import LOCK_NAME, DownloadLock

log = logging.getLogger(__name__)

BASE_COLUMNS = list(RAW_INDEX.columns)


def run(params: Params, spec: DatasetSpec | None = None) -> None:
    """Download stage: sources -> verified files -> extracted archives -> index.csv, dataset.json.

    `spec` defaults to the registered dataset `params.data.dataset`.
    """
    if spec is None:
        from aver.datasets import get_dataset

        spec = get_dataset(params.data.dataset)
    root = Path(params.data.root)
    root.mkdir(parents=True, exist_ok=True)
    if remove_stale_temps(root):
        log.info("removed temp files left by an interrupted run")
    sources = spec.sources(params)
    fetch_sources(sources, root, params.download)
    spec.materialize(root, params)
    samples = spec.samples(root, params)
    classes = list(spec.class_names(params))
    if not samples:
        raise DataError(
            f"no {spec.name} clips found under {root} "
            f"({len(sources)} files downloaded; expected media files of the {spec.name} layout)",
            path=root,
            fix=f"check data.{spec.name} in params.yaml (and that the downloaded archives hold "
            f"the media), or delete {root} and rerun the download stage",
        )
    spec.check_samples(samples, classes, params)
    frame = index_frame(samples, root, classes)
    RAW_INDEX.write(root, frame)
    modalities = list(spec.modalities(params, samples))
    DatasetInfo(spec.name, classes, spec.folds(samples), len(frame), modalities).write(root)
    inputs.record(spec.external_inputs(root, params, samples), root, params.download.workers)
    counts = Counter(frame["label"])
    log.info(
        "%s: %d clips, %d speakers, %d classes (%s) -> %s",
        spec.name,
        len(frame),
        frame["speaker"].nunique(),
        len(classes),
        ", ".join(f"{c} {counts.get(c, 0)}" for c in classes),
        root / "index.csv",
    )


def fetch_sources(
    sources: list[Source], root: Path, cfg: DownloadConfig, *, progress: bool = True
) -> list[Path]:
    """Download every source into `root` (in `cfg.workers` threads) and extract archives.

    Sources without a known checksum are pinned on first use in `root/downloads.lock.json` and
    verified against it afterwards (aver.io.lockfile). Every source is attempted; failures are
    reported together in one DownloadError/DataError after the others finished (their files are
    kept, so a rerun only fetches what is missing).
    """
    _check_unique(sources)
    for src in sources:
        _inside(root, src.dest, "dest")
        if src.extract_to is not None:
            _inside(root, src.extract_to, "extract_to")
    if not sources:
        return []
    lock = DownloadLock(root / LOCK_NAME)

    def one(src: Source) -> Path:
        path = download(
            src.url,
            root / src.dest,
            size=src.size,
            md5=src.md5,
            sha256=src.sha256,
            lock=lock,
            progress=progress,
            **cfg.transfer_kwargs(),
        )
        if src.extract_to is not None:
            safe_extract(path, root / src.extract_to, progress=progress, **cfg.extract_kwargs())
        return path

    workers = max(1, min(cfg.workers, len(sources)))
    errors: list[AverError] = []
    paths: list[Path] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool:
        futures = [pool.submit(one, src) for src in sources]
        for fut in futures:
            try:
                paths.append(fut.result())
            except AverError as err:
                errors.append(err)
    lock.log_new()
    if errors:
        if len(errors) == 1:
            raise errors[0]
        kind = DownloadError if any(isinstance(e, DownloadError) for e in errors) else DataError
        details = "\n".join(f"  - {e}".replace("\n", "\n    ") for e in errors)
        raise kind(
            f"{len(errors)} of {len(sources)} dataset files failed:\n{details}",
            path=root,
            fix="fix the causes above and rerun; verified files are kept and not fetched again",
        )
    log.info("%d files present and verified in %s", len(paths), root)
    return paths


def index_frame(samples: list[Sample], root: Path, classes: list[str]) -> pd.DataFrame:
    """The index.csv table: base columns + meta keys (first-seen order), sorted by clip_id.

    Raises DataError for duplicate clip ids, labels outside `classes` or missing media files.
    """
    dupes = sorted(k for k, n in Counter(s.clip_id for s in samples).items() if n > 1)
    if dupes:
        raise DataError(
            f"duplicate clip ids in the dataset listing: {dupes[:5]}",
            path=root,
            fix="clip ids must be unique: report this as a dataset-spec bug",
        )
    unknown = sorted({s.label for s in samples} - set(classes))
    if unknown:
        raise DataError(
            f"labels {unknown} are not in the class list {classes}",
            path=root,
            fix="fix the dataset's label mapping or its class list",
        )
    missing = [s.path for s in samples if not (root / s.path).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} listed media files do not exist, e.g. {missing[:3]}",
            path=root,
            fix=f"delete {root} and rerun the download stage",
        )
    meta_cols: list[str] = []
    for s in samples:
        meta_cols += [k for k in s.meta if k not in meta_cols and k not in BASE_COLUMNS]
    rows = [
        {
            "clip_id": s.clip_id,
            "path": Path(s.path).as_posix(),
            "label": s.label,
            "speaker": s.speaker,
            **{k: s.meta.get(k) for k in meta_cols},
        }
        for s in samples
    ]
    frame = pd.DataFrame(rows, columns=BASE_COLUMNS + meta_cols)
    return frame.sort_values("clip_id", kind="stable").reset_index(drop=True)


def _check_unique(sources: list[Source]) -> None:
    dests = Counter(PurePosixPath(s.dest).as_posix() for s in sources)
    dupes = sorted(d for d, n in dests.items() if n > 1)
    if dupes:
        raise DataError(
            f"several sources share the destination(s) {dupes[:5]}",
            fix="give every source its own dest (dataset-spec bug)",
        )


def _inside(root: Path, rel: str, what: str) -> None:
    """Refuse a source path that is absolute or leaves `root` (names may come from a record)."""
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not rel or PurePosixPath(rel).is_absolute() or ".." in parts or rel.startswith("\\"):
        raise DataError(
            f"source {what} {rel!r} is not a relative path inside the data root",
            path=root,
            fix="dataset files must stay under data.root; check the dataset record/spec",
        )

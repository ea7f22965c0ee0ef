"""What DVC sees of a dataset's inputs that live outside `data.root` (a folder dataset's CSV and
media): links it hashes, and a content manifest that changes the download stage's output.

DVC cannot take a dependency path from params.yaml that may be null, and the listed media are
only known once the CSV is read. So the download stage writes, beside `data.root`, the folder
`inputs/links/` of symlinks to every external input (`dataset.csv` and `media/<clip_id><ext>`);
dvc.yaml makes `data/inputs` a dependency of download, and DVC follows the links when it
hashes it. Editing the CSV or replacing a video changes that hash, so `dvc repro` reruns
download. Download then writes `inputs.csv` (name, bytes, sha256 of each input) into
`data.root`: a replaced video with an unchanged listing still changes download's output, so
the stages after it rerun. Datasets whose media lies in `data.root` have no external inputs:
the links folder is empty and no manifest is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from aver.io.atomic import partial_dir, promote_dir, write_csv

log = logging.getLogger(__name__)

MANIFEST = "inputs.csv"
MANIFEST_COLUMNS = ["name", "bytes", "sha256"]
CHUNK = 1 << 20


def links_dir(root: str | Path) -> Path:
    """The links folder for a data root: `<root>/../inputs/links` (data/inputs/links)."""
    return Path(root).parent / "inputs" / "links"


def sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's content."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def manifest(inputs: dict[str, Path], workers: int = 2) -> pd.DataFrame:
    """name, bytes, sha256 of each input file (hashed in `workers` threads), sorted by name."""
    names = sorted(inputs)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hash") as pool:
        digests = list(pool.map(lambda n: sha256(inputs[n]), names))
    rows = [(n, inputs[n].stat().st_size, d) for n, d in zip(names, digests)]
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def write_links(inputs: dict[str, Path], links: Path) -> None:
    """Replace `links` with a folder of symlinks `name -> absolute input path` (atomically)."""
    work = partial_dir(links)
    shutil.rmtree(work)
    work.mkdir()
    for name, target in inputs.items():
        link = work / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(target).resolve(), link)
    promote_dir(work, links)


def record(inputs: dict[str, Path], root: Path, workers: int = 2) -> None:
    """Write the links DVC hashes and `root/inputs.csv`; with no inputs, remove both."""
    links = links_dir(root)
    manifest_path = root / MANIFEST
    if not inputs:
        if links.exists():
            shutil.rmtree(links)
        manifest_path.unlink(missing_ok=True)
        return
    write_links(inputs, links)
    table = manifest(inputs, workers)
    write_csv(manifest_path, table)
    log.info(
        "%d input files (%.1f MB) hashed into %s; DVC follows the links in %s",
        len(table),
        table["bytes"].sum() / 1e6,
        manifest_path,
        links,
    )

"""CREMA-D (Cao et al. 2014): 7,442 clips of 91 actors (1001..1091), 6 emotions, 12 sentences.

Media come from the CheyneyComputerScience/CREMA-D repository, stored in Git LFS: each clip is
fetched from `media_url/<folder>/<clip>.<ext>` (ext: flv for VideoFlash, mp4 for VideoMP4, wav for
AudioWAV, the audio-only recordings: an audio-only dataset, dataset.json `modalities: [audio]`) into
`<data.root>/cremad/<folder>/`. Its sha256 and size come from the LFS manifest TSV
(`data.cremad.manifest`: columns path, sha256, size), or, when the manifest is absent or lists
nothing under the folder, from the LFS pointer file at `raw_url/<folder>/<clip>.<ext>`.
File names are `<actor>_<sentence>_<emotion>_<level>`, e.g. `1001_DFA_ANG_XX`; level is LO, MD,
HI or XX (unspecified).

Tables: `summaryTable.csv` (crowd votes; `MultiModalVote` is the audio-visual perceived emotion,
letters A D F H N S, several joined by ':' on a tie) and `VideoDemographics.csv` (actor age,
sex). They are read from `data.cremad.tables` when present there, else downloaded from `raw_url`
into `<data.root>/cremad/` (no published checksum: pinned on first use in
`<data.root>/downloads.lock.json`, see aver.io.lockfile). With `label_source: perceived` the
label is the MultiModalVote and clips whose vote is not a single class are dropped (the count is
logged).
"""

from __future__ import annotations

import csv
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aver.config import CremadConfig, Params
from aver.datasets.base import DatasetSpec, Sample, Source
from aver.errors import DataError, DownloadError
from aver.io.http import fetch_bytes, new_session
from aver.progress import bar as progress_bar

log = logging.getLogger(__name__)

EMOTION_CODES = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
VOTE_LETTERS = {code[0]: name for code, name in EMOTION_CODES.items()}  # A D F H N S
CLASSES = tuple(EMOTION_CODES.values())
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
ACTORS = range(1001, 1092)
EXTENSIONS = {"VideoFlash": "flv", "VideoMP4": "mp4", "AudioWAV": "wav"}
# local file name -> path in the CREMA-D repository
TABLES = {
    "summaryTable.csv": "processedResults/summaryTable.csv",
    "VideoDemographics.csv": "VideoDemographics.csv",
}

_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_FIX = "CREMA-D names are <actor>_<sentence>_<emotion>_<level> (e.g. 1001_DFA_ANG_XX.flv)"


def parse_cremad_name(filename: str | Path) -> dict[str, Any]:
    """Decode `1001_DFA_ANG_XX(.flv)` into actor (int), sentence, emotion (class), intensity."""
    name = Path(str(filename)).name
    stem = name.split(".", 1)[0]
    m = _NAME.match(stem)
    if not m:
        raise DataError(f"not a CREMA-D file name: {name!r}", fix=_FIX)
    actor, sentence, emotion, level = m.groups()
    problems = []
    if int(actor) not in ACTORS:
        problems.append(f"actor {actor} is not in 1001..1091")
    if sentence not in SENTENCES:
        problems.append(f"sentence {sentence} is not one of {', '.join(SENTENCES)}")
    if emotion not in EMOTION_CODES:
        problems.append(f"emotion {emotion} is not one of {', '.join(EMOTION_CODES)}")
    if level not in LEVELS:
        problems.append(f"level {level} is not one of {', '.join(LEVELS)}")
    if problems:
        raise DataError(f"not a CREMA-D file name: {name!r} ({'; '.join(problems)})", fix=_FIX)
    return {
        "actor": int(actor),
        "sentence": sentence,
        "emotion": EMOTION_CODES[emotion],
        "intensity": level,
    }


def perceived_label(vote: str | None) -> str | None:
    """The class of a MultiModalVote ('A'..'S'), or None when it is a tie ('A:D') or empty."""
    vote = (vote or "").strip()
    return VOTE_LETTERS.get(vote)


def read_manifest(path: str | Path) -> dict[str, tuple[str, int]]:
    """The LFS manifest TSV (path, sha256, size) as repo path -> (sha256, size)."""
    path = Path(path)
    out: dict[str, tuple[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = {"path", "sha256", "size"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"LFS manifest lacks column(s) {', '.join(sorted(missing))}",
                path=path,
                fix="the manifest is a TSV with header: path, sha256, size",
            )
        for i, row in enumerate(reader, start=2):
            sha, size = (row["sha256"] or "").strip().lower(), (row["size"] or "").strip()
            if not re.fullmatch(r"[0-9a-f]{64}", sha) or not size.isdigit():
                raise DataError(
                    f"line {i}: bad sha256 or size ({row['sha256']!r}, {row['size']!r})",
                    path=path,
                    fix="regenerate the manifest (path<TAB>sha256<TAB>size per LFS file)",
                )
            out[row["path"].strip()] = (sha, int(size))
    return out


def parse_lfs_pointer(text: str, url: str = "") -> tuple[str, int]:
    """(sha256, size) from a Git LFS pointer file (`oid sha256:<hex>`, `size <n>`)."""
    sha = re.search(r"^oid sha256:([0-9a-f]{64})\s*$", text, re.MULTILINE)
    size = re.search(r"^size (\d+)\s*$", text, re.MULTILINE)
    if not sha or not size:
        raise DownloadError(
            f"{url or 'response'} is not a Git LFS pointer (starts with {text[:80]!r})",
            fix="check data.cremad.raw_url (it must serve the repository's raw files), or provide "
            "the LFS manifest at data.cremad.manifest",
        )
    return sha.group(1), int(size.group(1))


def read_votes(path: str | Path) -> dict[str, str]:
    """summaryTable.csv: clip name -> MultiModalVote (raw string, e.g. 'A' or 'A:D')."""
    rows = _read_table(path, ("FileName", "MultiModalVote"))
    return {r["FileName"].strip(): (r["MultiModalVote"] or "").strip() for r in rows}


def read_demographics(path: str | Path) -> dict[str, dict[str, Any]]:
    """VideoDemographics.csv: actor id ('1001') -> {age: int, sex: 'male'/'female'}."""
    rows = _read_table(path, ("ActorID", "Age", "Sex"))
    out = {}
    for r in rows:
        age = (r["Age"] or "").strip()
        out[r["ActorID"].strip()] = {
            "age": int(age) if age.isdigit() else None,
            "sex": (r["Sex"] or "").strip().lower(),
        }
    return out


def _read_table(path: str | Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"lacks column(s) {', '.join(missing)}",
                path=path,
                fix="use the table from the CREMA-D repository unchanged",
            )
        return list(reader)


def _local_table(cfg: CremadConfig, name: str) -> Path | None:
    """A table in data.cremad.tables (flat, or at its repository path), if present."""
    base = Path(cfg.tables)
    for candidate in (base / name, base / TABLES[name]):
        if candidate.is_file():
            return candidate
    return None


def table_path(root: Path, cfg: CremadConfig, name: str) -> Path:
    """Where to read a table: data.cremad.tables if it has it, else <root>/cremad/<name>."""
    local = _local_table(cfg, name)
    if local is not None:
        return local
    downloaded = Path(root) / "cremad" / name
    if downloaded.is_file():
        return downloaded
    raise DataError(
        f"CREMA-D table {name} not found in {cfg.tables} nor in {downloaded.parent}",
        path=downloaded,
        fix="run the download stage (it fetches missing tables from data.cremad.raw_url), or "
        "point data.cremad.tables at a directory holding summaryTable.csv and "
        "VideoDemographics.csv",
    )


class CremadDataset(DatasetSpec):
    name = "cremad"
    classes = CLASSES
    n_folds = 5

    def modalities(self, params: Params, samples: list[Sample]) -> tuple[str, ...]:
        """`data.cremad.folder: AudioWAV` holds audio files only: an audio-only dataset."""
        if params.data.cremad.folder == "AudioWAV":
            return ("audio",)
        return super().modalities(params, samples)

    def sources(self, params: Params) -> list[Source]:
        """Tables missing locally, then the first `limit` clips (sorted) with sha256 and size."""
        cfg = params.data.cremad
        out = [
            Source(url=f"{cfg.raw_url}/{TABLES[n]}", dest=f"cremad/{n}")
            for n in TABLES
            if _local_table(cfg, n) is None
        ]
        ext = EXTENSIONS[cfg.folder]
        listed = self._manifest_entries(cfg)
        if listed:
            names = sorted(listed)[: cfg.limit]
            checks = [listed[n] for n in names]
        else:
            names = sorted(self._names_from_table(cfg, params))[: cfg.limit]
            checks = self._pointers(cfg, params, names)
        for name, (sha, size) in zip(names, checks):
            rel = f"{cfg.folder}/{name}.{ext}"
            out.append(
                Source(url=f"{cfg.media_url}/{rel}", dest=f"cremad/{rel}", size=size, sha256=sha)
            )
        return out

    def samples(self, root: Path, params: Params) -> list[Sample]:
        """Clips under `<root>/cremad/<folder>`, labelled per data.cremad.label_source."""
        cfg = params.data.cremad
        root = Path(root)
        base = root / "cremad" / cfg.folder
        parsed: list[tuple[Path, dict[str, Any]]] = []
        foreign = 0
        for path in sorted(base.glob(f"*.{EXTENSIONS[cfg.folder]}")):
            try:
                parsed.append((path, parse_cremad_name(path.name)))
            except DataError:
                foreign += 1
        if foreign:
            log.warning("%s: ignored %d files without a CREMA-D name", base, foreign)
        parsed = parsed[: cfg.limit]
        if not parsed:
            raise DataError(
                f"no CREMA-D clips (*.{EXTENSIONS[cfg.folder]}) found",
                path=base,
                fix="run the download stage (dvc repro download)",
            )
        votes = read_votes(table_path(root, cfg, "summaryTable.csv"))
        people = read_demographics(table_path(root, cfg, "VideoDemographics.csv"))
        out, ambiguous = [], 0
        for path, info in parsed:
            perceived = perceived_label(votes.get(path.stem))
            label = info["emotion"]
            if cfg.label_source == "perceived":
                if perceived is None:
                    ambiguous += 1
                    continue
                label = perceived
            person = people.get(str(info["actor"]), {})
            out.append(
                Sample(
                    clip_id=path.stem,
                    path=path.relative_to(root).as_posix(),
                    label=label,
                    speaker=str(info["actor"]),
                    meta={
                        "sentence": info["sentence"],
                        "intensity": info["intensity"],
                        "intended_label": info["emotion"],
                        "perceived_label": perceived or "",
                        "sex": person.get("sex", ""),
                        "age": person.get("age"),
                    },
                )
            )
        if ambiguous:
            log.info(
                "label_source=perceived: dropped %d of %d clips whose MultiModalVote is not a "
                "single class (a tie or missing)",
                ambiguous,
                len(parsed),
            )
        return sorted(out, key=lambda s: s.clip_id)

    @staticmethod
    def _manifest_entries(cfg: CremadConfig) -> dict[str, tuple[str, int]]:
        """Clip name -> (sha256, size) for the folder's files in the manifest ({} if none)."""
        path = Path(cfg.manifest)
        if not path.is_file():
            log.info("no LFS manifest at %s; reading LFS pointers from %s", path, cfg.raw_url)
            return {}
        prefix, suffix = f"{cfg.folder}/", f".{EXTENSIONS[cfg.folder]}"
        entries = {
            p[len(prefix) : -len(suffix)]: v
            for p, v in read_manifest(path).items()
            if p.startswith(prefix) and p.endswith(suffix) and "/" not in p[len(prefix) :]
        }
        if not entries:
            log.info(
                "%s lists no %s files; reading LFS pointers from %s", path, prefix, cfg.raw_url
            )
        return entries

    @staticmethod
    def _names_from_table(cfg: CremadConfig, params: Params) -> list[str]:
        """Clip names from summaryTable.csv (local, else fetched from raw_url)."""
        local = _local_table(cfg, "summaryTable.csv")
        if local is not None:
            votes = read_votes(local)
        else:
            dl = params.download
            url = f"{cfg.raw_url}/{TABLES['summaryTable.csv']}"
            data = fetch_bytes(
                url, retries=dl.retries, backoff_s=dl.backoff_s, timeout_s=dl.timeout_s
            )
            reader = csv.DictReader(data.decode("utf-8").splitlines())
            if "FileName" not in (reader.fieldnames or []):
                raise DownloadError(
                    f"{url} has no FileName column", fix="check data.cremad.raw_url"
                )
            votes = {r["FileName"].strip(): "" for r in reader}
        names = []
        for name in votes:
            try:
                parse_cremad_name(name)
            except DataError:
                continue
            names.append(name)
        return names

    @staticmethod
    def _pointers(cfg: CremadConfig, params: Params, names: list[str]) -> list[tuple[str, int]]:
        """(sha256, size) of each clip from its LFS pointer at raw_url (threaded, in order)."""
        dl = params.download
        ext = EXTENSIONS[cfg.folder]
        local = threading.local()
        sessions = []

        def one(name: str) -> tuple[str, int]:
            if not hasattr(local, "session"):
                local.session = new_session()
                sessions.append(local.session)
            url = f"{cfg.raw_url}/{cfg.folder}/{name}.{ext}"
            data = fetch_bytes(
                url,
                retries=dl.retries,
                backoff_s=dl.backoff_s,
                timeout_s=dl.timeout_s,
                session=local.session,
            )
            return parse_lfs_pointer(data[:1024].decode("utf-8", "replace"), url)

        try:
            with ThreadPoolExecutor(max_workers=max(1, dl.workers)) as pool:
                return list(
                    progress_bar(
                        pool.map(one, names), total=len(names), desc="LFS pointers", leave=False
                    )
                )
        finally:
            for sess in sessions:
                sess.close()

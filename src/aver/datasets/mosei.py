"""CMU-MOSEI (Zadeh et al. 2018): YouTube monologue segments rated for six emotions.

Downloads are opt-in (the raw videos are very large): `data.mosei.subsets` lists archive names
under `data.mosei.base_url`; each is downloaded to `<data.root>/archives/mosei/` and extracted
into `<data.root>/mosei/`. No record publishes checksums for the archives or the labels, so they
are pinned on first use (`<data.root>/downloads.lock.json`, aver.io.lockfile) and verified
against that afterwards. The media must be *segmented* clips named `<video_id>_<clip_id>.mp4` (or
`<clip_id>.mp4` when the clip id already starts with the video id); full videos are not cut.

Labels come from a CSV at `data.mosei.labels_url` (a URL, downloaded to
`<data.root>/mosei/labels.csv`, or a local path), one row per segment, with columns:

    video_id   YouTube video id
    clip_id    segment id within the video (a column named `segment` is accepted too)
    start, end segment bounds in the full video, seconds (kept as metadata)
    happiness, sadness, anger, fear, disgust, surprise   intensities (0..3, averaged ratings)

Class = the dominant emotion: the largest intensity; all intensities <= 0 -> neutral; ties go to
the emotion listed first in `EMOTIONS` (happiness, sadness, anger, fear, disgust, surprise).
Speaker = the YouTube video id. Caveat: MOSEI has no speaker ids; one video is one speaker, but a
speaker appearing in several videos can land in different folds, so speaker-independence holds
per video only. Label rows whose clip is not on disk are skipped (the count is logged).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aver.config import MoseiConfig, Params
from aver.datasets.base import DatasetSpec, Sample, Source
from aver.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EMOTIONS = ("happiness", "sadness", "anger", "fear", "disgust", "surprise")  # tie-break order
CLASSES = ("neutral", *EMOTIONS)
LABEL_COLUMNS = ("video_id", "clip_id", "start", "end", *EMOTIONS)
MEDIA_SUFFIXES = (".mp4",)
_OPT_IN = (
    "list the archives to fetch in params.yaml, e.g. data.mosei.subsets: [<archive>.zip] "
    "(names under data.mosei.base_url), and set data.mosei.labels_url to the labels CSV"
)


def dominant_emotion(intensities: Mapping[str, float]) -> str:
    """The class of one segment: argmax over EMOTIONS (first wins a tie); all <= 0 -> neutral."""
    best, best_value = "neutral", 0.0
    for emotion in EMOTIONS:
        value = float(intensities.get(emotion, 0.0))
        if math.isnan(value):
            raise ValueError(f"{emotion} intensity is NaN")
        if value > best_value:
            best, best_value = emotion, value
    return best


def labels_path(root: Path, cfg: MoseiConfig) -> Path:
    """The labels CSV: labels_url itself when it is a local file, else the downloaded copy."""
    if cfg.labels_url and Path(cfg.labels_url).is_file():
        return Path(cfg.labels_url)
    return Path(root) / "mosei" / "labels.csv"


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """Rows of the labels CSV: video_id, clip_id, start, end and float intensities."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "MOSEI labels CSV not found",
            path=path,
            fix="set data.mosei.labels_url and run the download stage",
        )
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = ["clip_id" if h == "segment" else h for h in header]
        missing = [c for c in LABEL_COLUMNS if c not in reader.fieldnames]
        if missing:
            raise DataError(
                f"labels CSV lacks column(s) {', '.join(missing)}",
                path=path,
                fix=f"the header must include {','.join(LABEL_COLUMNS)}",
            )
        rows = []
        for i, row in enumerate(reader, start=2):
            try:
                values = {c: float(row[c]) for c in ("start", "end", *EMOTIONS)}
            except (TypeError, ValueError):
                raise DataError(
                    f"line {i}: start, end and the six intensities must be numbers",
                    path=path,
                    fix="fix or remove that row",
                ) from None
            vid, cid = (row["video_id"] or "").strip(), (row["clip_id"] or "").strip()
            if not vid or not cid:
                raise DataError(
                    f"line {i}: empty video_id or clip_id", path=path, fix="fill in or remove it"
                )
            rows.append({"video_id": vid, "clip_id": cid, **values})
    return rows


class MoseiDataset(DatasetSpec):
    name = "mosei"
    classes = CLASSES
    n_folds = 5

    def sources(self, params: Params) -> list[Source]:
        """The opted-in archives plus the labels CSV; ConfigError when nothing is opted in."""
        cfg = params.data.mosei
        if not cfg.subsets:
            raise ConfigError(
                "data.mosei.subsets is empty: CMU-MOSEI downloads are opt-in (hundreds of GB)",
                fix=_OPT_IN,
            )
        if not cfg.labels_url:
            raise ConfigError(
                "data.mosei.labels_url is not set: MOSEI needs a labels CSV (see "
                "aver.datasets.mosei for its columns)",
                fix=_OPT_IN,
            )
        base = cfg.base_url.rstrip("/")
        out = [
            Source(
                url=f"{base}/{name.lstrip('/')}",
                dest=f"archives/mosei/{Path(name).name}",
                extract_to="mosei",
            )
            for name in cfg.subsets
        ]
        if not Path(cfg.labels_url).is_file():
            out.append(Source(url=cfg.labels_url, dest="mosei/labels.csv"))
        return out

    def samples(self, root: Path, params: Params) -> list[Sample]:
        """Labelled segments whose media is under `<root>/mosei`, sorted by clip_id."""
        root = Path(root)
        base = root / "mosei"
        media = {p.stem: p for p in sorted(base.rglob("*")) if p.suffix.lower() in MEDIA_SUFFIXES}
        rows = read_labels(labels_path(root, params.data.mosei))
        out: dict[str, Sample] = {}
        absent = 0
        for row in rows:
            vid, cid = row["video_id"], row["clip_id"]
            stem = next((s for s in (f"{vid}_{cid}", cid) if s in media), None)
            if stem is None:
                absent += 1
                continue
            if stem in out:
                raise DataError(
                    f"segment {stem} is labelled twice",
                    path=labels_path(root, params.data.mosei),
                    fix="keep one row per segment",
                )
            out[stem] = Sample(
                clip_id=stem,
                path=media[stem].relative_to(root).as_posix(),
                label=dominant_emotion(row),
                speaker=vid,
                meta={"start": row["start"], "end": row["end"]},
            )
        if absent:
            log.info("MOSEI: %d of %d labelled segments have no media on disk", absent, len(rows))
        if not out:
            raise DataError(
                "no labelled MOSEI segment found on disk",
                path=base,
                fix="check data.mosei.subsets (segmented clips named <video_id>_<clip_id>.mp4) "
                "and data.mosei.labels_url, then rerun the download stage",
            )
        return [out[k] for k in sorted(out)]

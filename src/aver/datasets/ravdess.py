"""RAVDESS (Livingstone & Russo 2018), Zenodo record 1188976: 24 actors, 8 emotions.

Media: one archive per actor, `Video_Speech_Actor_XX.zip` (size and md5 from the Zenodo record),
extracted into `<data.root>/ravdess/` (the archives hold `Actor_XX/<name>.mp4`). Each archive has
full-AV (`01-...`) and video-only (`02-...`) clips; only full-AV speech clips (`01-01-*.mp4`)
are samples. With `data.modality: audio` the media is instead the one archive of the audio-only
recordings, `Audio_Speech_Actors_01-24.zip` (`Actor_XX/03-01-*.wav`), and the audio-only speech
clips (`03-01-*.wav`) of the selected actors are the samples (an audio-only dataset).
File names are seven two-digit codes, `MM-VV-EE-II-SS-RR-AA`:
modality, vocal channel, emotion, intensity, statement, repetition, actor (odd = male).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aver.config import Params
from aver.datasets.base import DatasetSpec, Sample, Source
from aver.errors import DataError, DownloadError
from aver.io.http import fetch_json

log = logging.getLogger(__name__)

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = ("full-AV", "video-only", "audio-only")
VOCAL_CHANNELS = ("speech", "song")
INTENSITIES = ("normal", "strong")
STATEMENTS = ("Kids are talking by the door", "Dogs are sitting by the door")
N_ACTORS = 24

_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_FIELDS = (
    ("modality", len(MODALITIES)),
    ("vocal_channel", len(VOCAL_CHANNELS)),
    ("emotion", len(EMOTIONS)),
    ("intensity", len(INTENSITIES)),
    ("statement", len(STATEMENTS)),
    ("repetition", 2),
    ("actor", N_ACTORS),
)
_FIX = "RAVDESS names are MM-VV-EE-II-SS-RR-AA.mp4 (e.g. 01-01-05-02-01-01-12.mp4)"


@dataclass(frozen=True)
class RavdessName:
    """The fields of a RAVDESS file name; also readable like a dict (`name["emotion"]`)."""

    modality: str  # "full-AV" | "video-only" | "audio-only"
    vocal_channel: str  # "speech" | "song"
    emotion: str  # a class name (EMOTIONS)
    intensity: str  # "normal" | "strong"
    statement: int  # 1 | 2
    repetition: int  # 1 | 2
    actor: int  # 1..24
    sex: str  # "male" (odd actor) | "female" (even actor)

    @property
    def label(self) -> str:
        return self.emotion

    @property
    def speaker(self) -> str:
        """The actor id, zero-padded ("01".."24")."""
        return f"{self.actor:02d}"

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return list(self.__dataclass_fields__)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_ravdess_name(filename: str | Path) -> RavdessName:
    """Decode a RAVDESS file name (path and extension optional) into its fields.

    `01-01-05-02-01-01-12.mp4` -> full-AV, speech, angry, strong, statement 1, repetition 1,
    actor 12, female. Raises DataError for a name that is not seven in-range two-digit codes.
    (Real RAVDESS has no strong-intensity neutral clip; such a name is accepted all the same.)
    """
    name = Path(str(filename)).name
    stem = name.split(".", 1)[0]
    m = _NAME.match(stem)
    if not m:
        raise DataError(f"not a RAVDESS file name: {name!r}", fix=_FIX)
    codes = [int(g) for g in m.groups()]
    for (field, top), code in zip(_FIELDS, codes):
        if not 1 <= code <= top:
            raise DataError(
                f"not a RAVDESS file name: {name!r} "
                f"({field} code {code:02d} is not in 01..{top:02d})",
                fix=_FIX,
            )
    modality, channel, emotion, intensity, statement, repetition, actor = codes
    return RavdessName(
        modality=MODALITIES[modality - 1],
        vocal_channel=VOCAL_CHANNELS[channel - 1],
        emotion=EMOTIONS[emotion - 1],
        intensity=INTENSITIES[intensity - 1],
        statement=statement,
        repetition=repetition,
        actor=actor,
        sex="male" if actor % 2 else "female",
    )


AUDIO_ARCHIVE = "Audio_Speech_Actors_01-24.zip"  # every actor's audio-only speech clips


def archive_name(actor: int) -> str:
    return f"Video_Speech_Actor_{actor:02d}.zip"


def _audio(params: Params) -> bool:
    """`data.modality: audio`: the audio-only recordings (03-01-*.wav) instead of the videos."""
    return params.data.modality == "audio"


def record_files(record: Any) -> dict[str, dict[str, Any]]:
    """Files of a Zenodo record JSON: name -> {url, size, md5}.

    Handles the legacy API (`files: [{key, size, checksum, links: {self}}]`), the InvenioRDM API
    (`links: {self, content}`; `content` is the download, `self` may be metadata) and the
    `files: {entries: ...}` shape (a list or a name-keyed mapping).
    """
    files = record.get("files") if isinstance(record, dict) else None
    if isinstance(files, dict):
        files = files.get("entries", [])
    if isinstance(files, dict):
        files = [{"key": k, **v} for k, v in files.items()]
    out: dict[str, dict[str, Any]] = {}
    for entry in files or []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("key") or entry.get("filename")
        links = entry.get("links") or {}
        url = links.get("content") or links.get("download") or links.get("self")
        if not name or not url:
            continue
        checksum = str(entry.get("checksum") or "")
        algo, _, digest = checksum.rpartition(":")
        md5 = digest.lower() if digest and algo in ("md5", "") else None
        size = entry.get("size", entry.get("filesize"))
        out[name] = {"url": url, "size": int(size) if size is not None else None, "md5": md5}
    return out


class RavdessDataset(DatasetSpec):
    name = "ravdess"
    classes = EMOTIONS
    n_folds = 6

    def sources(self, params: Params) -> list[Source]:
        """Fetch the Zenodo record and list the selected actors' video speech archives (the
        audio-only archive with `data.modality: audio`)."""
        url = params.data.ravdess.record_url
        dl = params.download
        record = fetch_json(url, retries=dl.retries, backoff_s=dl.backoff_s, timeout_s=dl.timeout_s)
        files = record_files(record)
        wanted = [archive_name(a) for a in sorted(set(params.data.ravdess.actors))]
        if _audio(params):
            wanted = [AUDIO_ARCHIVE]
        missing = [n for n in wanted if n not in files]
        if missing:
            raise DownloadError(
                f"the Zenodo record {url} does not list {', '.join(missing)} "
                f"({len(files)} files listed)",
                fix="check data.ravdess.record_url (the RAVDESS record is "
                "https://zenodo.org/api/records/1188976) and data.ravdess.actors",
            )
        return [
            Source(
                url=files[n]["url"],
                dest=f"archives/ravdess/{n}",
                size=files[n]["size"],
                md5=files[n]["md5"],
                extract_to="ravdess",
            )
            for n in wanted
        ]

    def samples(self, root: Path, params: Params) -> list[Sample]:
        """Full-AV (`data.modality: audio`: audio-only) speech clips of the selected actors
        under `<root>/ravdess`, by clip_id."""
        base = Path(root) / "ravdess"
        actors = set(params.data.ravdess.actors)
        kind, ext, pattern = (
            ("audio-only", "wav", "03-01-*.wav")
            if _audio(params)
            else ("full-AV", "mp4", "01-01-*.mp4")
        )
        found: dict[str, Sample] = {}
        foreign = 0
        for path in sorted(base.rglob(f"*.{ext}")):
            try:
                info = parse_ravdess_name(path.name)
            except DataError:
                foreign += 1
                continue
            if info.modality != kind or info.vocal_channel != "speech":
                continue
            if info.actor not in actors:
                continue
            if path.stem in found:
                raise DataError(
                    f"clip {path.stem} appears twice: {found[path.stem].path} and "
                    f"{path.relative_to(root).as_posix()}",
                    path=base,
                    fix=f"delete {base} and rerun the download stage",
                )
            found[path.stem] = ravdess_sample(path, root, info)
        if foreign:
            log.warning("%s: ignored %d .%s files without a RAVDESS name", base, foreign, ext)
        if not found:
            raise DataError(
                f"no {kind} speech clips ({pattern}) of the selected actors found",
                path=base,
                fix="run the download stage (dvc repro download); data.ravdess.actors selects "
                "the actors",
            )
        return [found[k] for k in sorted(found)]


def ravdess_sample(path: Path, root: Path, info: RavdessName | None = None) -> Sample:
    """The Sample for a RAVDESS-named media file under `root` (also used by the demo set)."""
    info = info or parse_ravdess_name(path.name)
    return Sample(
        clip_id=path.stem,
        path=path.relative_to(root).as_posix(),
        label=info.label,
        speaker=info.speaker,
        meta={
            "intensity": info.intensity,
            "statement": info.statement,
            "repetition": info.repetition,
            "sex": info.sex,
        },
    )

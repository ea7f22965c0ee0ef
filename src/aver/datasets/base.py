"""The dataset interface: where media comes from, how file names map to labels and speakers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aver.config import Params


@dataclass(frozen=True)
class Source:
    """One remote file to fetch into data/raw (checksums from the record, pointer or manifest)."""

    url: str
    dest: str  # relative to data.root
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    extract_to: str | None = None  # archive: extract into this dir (relative to data.root)


@dataclass(frozen=True)
class Sample:
    """One clip: a media file with its label and speaker."""

    clip_id: str
    path: str  # relative to data.root
    label: str
    speaker: str
    meta: dict[str, Any] = field(default_factory=dict)


class DatasetSpec(ABC):
    """A dataset: its classes, its remote sources, and how to list samples from files on disk."""

    name: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    n_folds: ClassVar[int] = 5

    def class_names(self, params: Params) -> tuple[str, ...]:
        """The class list (label index order); datasets whose classes come from data override."""
        return self.classes

    def modalities(self, params: Params, samples: list[Sample]) -> tuple[str, ...]:
        """The inputs its clips are used for (dataset.json `modalities`): audio only with
        `data.modality: audio`; datasets whose files have no video override."""
        return ("audio",) if params.data.modality == "audio" else ("audio", "video")

    def folds(self, samples: list[Sample]) -> int:
        """Number of speaker-independent folds for these samples (the dataset's default)."""
        return self.n_folds

    def check_samples(  # noqa: B027
        self, samples: list[Sample], classes: list[str], params: Params
    ) -> None:
        """Raise DataError when the listing cannot be split or trained on; default: no check."""

    def external_inputs(self, root: Path, params: Params, samples: list[Sample]) -> dict[str, Path]:
        """Input files outside `root` that DVC must see (link name -> file; aver.datasets.inputs);
        default: none (the media lies in `root`, a DVC output)."""
        return {}

    def sources(self, params: Params) -> list[Source]:
        """Remote files to download (may fetch small metadata, e.g. a Zenodo record)."""
        return []

    def materialize(self, root: Path, params: Params) -> None:  # noqa: B027
        """Produce media that is not downloaded (the demo generator); default: nothing."""

    @abstractmethod
    def samples(self, root: Path, params: Params) -> list[Sample]:
        """List the usable clips found under `root`, sorted by clip_id."""

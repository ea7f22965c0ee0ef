"""The first file's probe and extraction, started before torch is imported (`aver predict`).

Importing torch takes seconds of a short clip's real-time budget; ffmpeg meanwhile runs on
another core. The extraction uses the extract settings of `--params` (those the model was most
likely trained with; defaults when the file is absent) in a background thread. Once the model is
loaded, `take` hands the result over only when the model's output settings are the same and the file
has every stream the model needs; otherwise it is discarded and the file is extracted again.
Light to import: no torch, no pandas.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aver.config import ExtractConfig
from aver.output_settings import output_settings

if TYPE_CHECKING:
    from aver.media.probe import MediaInfo
    from aver.predict.media import Extracted
    from aver.predict.modalities import InputPlan
    from aver.predict.steps import Steps

log = logging.getLogger("aver.predict")


def planned_settings(params: str | Path) -> ExtractConfig:
    """The extract settings of the params file (the defaults when it is absent or invalid: the
    model's own settings decide later)."""
    from aver.config import load_params
    from aver.errors import AverError

    try:
        return load_params(params).extract if Path(params).is_file() else ExtractConfig()
    except AverError:
        return ExtractConfig()


class EarlyExtraction:
    """Probe and extract `video` with `cfg` in a daemon thread, from construction on."""

    def __init__(self, video: str | Path, cfg: ExtractConfig) -> None:
        self.video, self.cfg = Path(video), cfg
        self.seconds: dict[str, float] = {}
        self.info: MediaInfo | None = None
        self._row: dict[str, Any] | None = None
        self._work: tempfile.TemporaryDirectory[str] | None = None
        self._probe_done = threading.Event()  # set once probing ended (the extraction goes on)
        self._thread = threading.Thread(target=self._run, name="aver-early-extract", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import time

        from aver.predict.media import check_media, extract_media

        try:
            start = time.perf_counter()
            try:
                self.info = check_media(self.video)
            finally:
                self._probe_done.set()
            self.seconds["probe"] = time.perf_counter() - start
            self._work = tempfile.TemporaryDirectory(prefix="aver-predict-")
            self._row = extract_media(self.video, self.cfg, Path(self._work.name), missing_ok=True)
            self.seconds["extract"] = time.perf_counter() - start - self.seconds["probe"]
        except Exception:  # the regular path runs again and reports the error
            log.debug("early extraction of %s failed", self.video, exc_info=True)
        finally:
            self._probe_done.set()  # also when the imports above failed

    def probed(self) -> MediaInfo | None:
        """The probe's result once done (None when probing failed); the extraction may still
        be running (torch's import goes on beside it)."""
        self._probe_done.wait()
        return self.info

    def take(self, cfg: ExtractConfig, plan: InputPlan, steps: Steps) -> Extracted | None:
        """The extraction, when it was made with `cfg` and holds what `plan` reads; else None
        (its files removed). The thread's step times are added to `steps`."""
        from aver.predict.media import Extracted

        self._thread.join()
        for name, seconds in self.seconds.items():
            steps.add(name, seconds)
        usable = (
            self._row is not None
            and self._work is not None
            and output_settings(cfg) == output_settings(self.cfg)
            and (plan.extract_missing_ok or (bool(self._row["audio"]) and bool(self._row["video"])))
        )
        if usable:
            assert self._row is not None and self._work is not None
            work, self._work = self._work, None  # the Extracted's to clean up now
            return Extracted(self.video, self._row, plan, work)
        self.discard()
        return None

    def discard(self) -> None:
        """Remove the files of an extraction not handed over (waits for the thread)."""
        self._thread.join()
        if self._work is not None:
            self._work.cleanup()
            self._work = None


def start_early(args: Any) -> EarlyExtraction | None:
    """An EarlyExtraction for `aver predict` on exactly one file, without `--output` (several
    files already extract the next one beside the scoring); else None."""
    videos = args.video if isinstance(args.video, list) else [args.video]
    if len(videos) != 1 or getattr(args, "output", None) or getattr(args, "card", False):
        return None
    video = Path(str(videos[0]))
    if not video.is_file():
        return None
    return EarlyExtraction(video, planned_settings(getattr(args, "params", "params.yaml")))

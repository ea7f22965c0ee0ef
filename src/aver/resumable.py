"""The skeleton of a resumable stage (extract, align, cache), written once.

A stage builds its output in `<out>.partial/` (`aver.io.atomic.partial_dir`):

1. settings: the stage's output settings (`aver.output_settings`) are stamped in
   `<stage>-params.json`; when they differ from the interrupted run's (or the stamp is missing
   beside earlier work), the partial directory is emptied and the stage starts over;
2. items: each job whose result an earlier run finished (`done(job)` is not None) is reused, the
   others are mapped with `aver.parallel.imap_unordered` (processes or Ray, with progress);
3. failures: a failed clip is recorded in `failures.csv` (`aver.failures`) and skipped; too many
   stop the stage with the work kept for a rerun;
4. promotion: the per-item scratch directories and the stamp are removed and the partial
   directory is renamed onto `<out>` (`aver.io.atomic.promote_dir`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from aver.failures import Failure, check_failure_fraction, with_sources, write_failures
from aver.io.atomic import partial_dir, promote_dir, write_json
from aver.parallel import Executor, imap_unordered

J = TypeVar("J")
R = TypeVar("R")


class ResumableRun(Generic[J, R]):
    """One run of a resumable stage: work dir, settings stamp, reuse, map, failures, promotion."""

    def __init__(
        self,
        stage: str,
        out: str | Path,
        settings: Mapping[str, Any],
        *,
        dirs: Sequence[str] = (),
        scratch: Sequence[str] = (),
        log: logging.Logger | None = None,
    ) -> None:
        """`dirs`: subdirectories to create; `scratch`: those holding per-item state only
        (deleted before promotion); `log`: the stage's logger (its lines name the stage)."""
        self.stage, self.out = stage, Path(out)
        self.log = log or logging.getLogger(__name__)
        self.work = partial_dir(self.out)
        self.scratch = tuple(scratch)
        self.reused = 0
        self._stamp = self.work / f"{stage}-params.json"
        self._start_over_if_changed(json.loads(json.dumps(dict(settings), default=str)))
        for sub in dirs:
            (self.work / sub).mkdir(parents=True, exist_ok=True)

    def _start_over_if_changed(self, want: dict[str, Any]) -> None:
        try:
            same = json.loads(self._stamp.read_text(encoding="utf-8")) == want
        except (OSError, ValueError):
            same = False
        earlier = [p for p in self.work.iterdir() if p != self._stamp]
        if not same and earlier:
            self.log.info("%s params changed since the interrupted run: starting over", self.stage)
            for path in earlier:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        write_json(self._stamp, want)

    def results(
        self,
        jobs: Sequence[J],
        done: Callable[[J], R | None],
        fn: Callable[[J], R],
        *,
        executor: Executor = "local",
        workers: int = 1,
        unit: str = "clip",
        verb: str = "done",
    ) -> list[tuple[J, R]]:
        """(job, result) for every job, in `jobs` order: `done(job)` where an earlier run
        finished it, else `fn(job)` (which records its own failures and never raises)."""
        found = [done(job) for job in jobs]
        todo = [job for job, r in zip(jobs, found) if r is None]
        self.reused = len(jobs) - len(todo)
        if self.reused:
            self.log.info(
                "resuming: %d of %d %ss already %s in %s",
                self.reused, len(jobs), unit, verb, self.work,
            )  # fmt: skip
        fresh = dict(
            (id(job), result)
            for job, result in imap_unordered(
                fn, todo, executor=executor, workers=workers, desc=self.stage, unit=unit
            )
        )
        return [(job, r if r is not None else fresh[id(job)]) for job, r in zip(jobs, found)]

    def record_failures(
        self,
        failures: list[Failure],
        total: int,
        max_fraction: float,
        sources: Mapping[str, str] | None = None,
    ) -> list[Failure]:
        """Write `failures.csv` (paths: the original files in `sources`), log each failure,
        and stop the stage (DataError, work kept) when more than `max_fraction` failed."""
        failures = sorted(with_sources(failures, sources or {}), key=lambda f: f.clip_id)
        table = self.work / "failures.csv"
        write_failures(table, failures)
        for f in failures:
            self.log.warning("failed %s: %s", f.path, f.reason)
        check_failure_fraction(failures, total, max_fraction, self.stage, table)
        return failures

    def promote(self) -> Path:
        """Delete the scratch directories and the stamp; rename the work onto `out`."""
        for sub in self.scratch:
            shutil.rmtree(self.work / sub, ignore_errors=True)
        self._stamp.unlink(missing_ok=True)
        promote_dir(self.work, self.out)
        return self.out

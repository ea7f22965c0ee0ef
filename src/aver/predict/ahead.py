"""Extraction beside the scoring: the next file's, and the first file's beside the detector build.

Extraction is mostly an ffmpeg process, so it runs on another core while this process detects
and scores the previous file (or builds the detector, `meanwhile`): `extracted_ahead` keeps
`ahead` files extracted in a background thread. Each item is (file, the Extracted or the error
raised for it); what is not consumed (an interrupted call) is waited for and its temporary
files removed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aver.predict.pipeline import Extracted


def extracted_ahead(
    files: Sequence[Path],
    extract: Callable[[Path], Extracted],
    *,
    ahead: int = 1,
    meanwhile: Callable[[], object] | None = None,
) -> Iterator[tuple[Path, Extracted | Exception]]:
    """(file, extract(file) or its exception) in order, `ahead` files extracted in advance;
    `meanwhile` runs in this thread while the first files extract."""
    pending: deque[tuple[Path, Future[Extracted]]] = deque()
    todo = iter(files)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aver-extract") as pool:
        try:
            for _ in range(ahead + 1):
                _submit(pool, todo, pending, extract)
            if meanwhile is not None:
                meanwhile()
            while pending:
                path, job = pending.popleft()
                _submit(pool, todo, pending, extract)
                try:
                    yield path, job.result()
                except Exception as err:  # recorded by the caller; the other files go on
                    yield path, err
        finally:
            for _, job in pending:
                job.cancel()
            for _, job in pending:
                if not job.cancelled() and job.exception() is None:
                    job.result().cleanup()


def _submit(
    pool: ThreadPoolExecutor,
    todo: Iterator[Path],
    pending: deque[tuple[Path, Future[Extracted]]],
    extract: Callable[[Path], Extracted],
) -> None:
    path = next(todo, None)
    if path is not None:
        pending.append((path, pool.submit(extract, path)))

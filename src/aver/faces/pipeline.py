"""The align stage: extracted videos -> tracked, aligned face crops in shards (`align.out`).

Per clip (in a worker, one detector per worker): decode the video once at `align.sample_fps`;
detect faces on every `align.detect_every`-th sampled frame (shrunk to `align.detect_side`,
batched), skipping up to `align.max_skip` - 1 of them in a row while the face stays still
(aver.faces.sparse_detection); track the main face; warp the frames kept at `align.keep_fps`
(default: the cache's `cache.video_fps`, what training reads) to the template. Each clip's result
is saved atomically in `<out>.partial/clips/` and skipped on a rerun; at the end the results are
packed into shards (each clip's file deleted once packed: one copy of the faces at a time), QA
plots and failures.csv are written, and the directory is promoted onto `<out>`.
Clips without video (manifest `video` "": an audio-only dataset) are passed through: not
aligned, not failures; the cache stage takes them without faces.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aver.progress import bar as progress_bar

if TYPE_CHECKING:
    import av
    import pandas as pd  # imported where used: `aver predict` starts without it

from aver.config import AlignConfig, Params
from aver.contracts import MANIFEST, RAW_INDEX, DatasetInfo
from aver.errors import DataError
from aver.faces.alignment import align_face
from aver.faces.detectors import Detector, make_detector
from aver.faces.face_track import track_faces
from aver.faces.sparse_detection import SparseDetection
from aver.faces.store import FaceStore, write_store
from aver.failures import Failure, source_paths
from aver.io.atomic import atomic_path, write_json
from aver.output_settings import output_settings
from aver.resumable import ResumableRun

log = logging.getLogger(__name__)

STAGE = "align"
CLIPS = "clips"  # per-clip results (npz + json) in the partial dir, packed into shards at the end


@dataclass(frozen=True)
class ClipJob:
    clip_id: str
    video: str  # absolute path of the extracted mp4
    rel: str  # path as written in the manifest (failures.csv names the original instead)
    work: str  # <out>.partial/clips
    cfg: AlignConfig
    keep_fps: float | None = None  # faces kept per s (keep_rate); None: every sampled frame


@dataclass(frozen=True)
class AlignedClip:
    """One clip's aligned faces and per-frame track; `arrays` is None when no face was found."""

    arrays: dict[str, np.ndarray] | None
    detection_rate: float
    fps: float
    n_frames: int


def iter_sampled(path: str | Path, sample_fps: float) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """Yield (sample index, frame-centre time in s, av.VideoFrame) at most `sample_fps` per s.

    Frame k of the constant-rate video covers [k/fps, (k+1)/fps); a frame is taken when the next
    sampling instant (j + 0.5) / sample_fps falls inside it.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DataError("no video stream", path=path, fix="rerun the extract stage")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise DataError("video has no frame rate", path=path, fix="rerun the extract stage")
        fps = float(rate)
        step = 1.0 / min(sample_fps, fps)
        next_t, j = 0.5 * step, 0
        for k, frame in enumerate(container.decode(stream)):
            end = (k + 1) / fps
            if next_t < end:
                yield j, (k + 0.5) / fps, frame
                j += 1
                while next_t < end:
                    next_t += step


def sampled_fps(path: str | Path, sample_fps: float) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if rate is None:
            raise DataError("video has no frame rate", path=path, fix="rerun the extract stage")
        return min(sample_fps, float(rate))


def keep_rate(params: Params) -> float | None:
    """Frames per second of faces the stage stores (`align.keep_fps`); None: every sampled one."""
    keep = params.align.keep_fps
    if keep == "source":
        return None
    rate = params.cache.video_fps if keep == "cache" else float(keep)
    return None if rate >= params.align.sample_fps else rate


class RateKeeper:
    """Online choice of frames at `rate` per s: a frame of period `period` centred at t is kept
    when the next instant (j + 0.5) / rate falls in [t - period / 2, t + period / 2)."""

    def __init__(self, rate: float | None, period: float):
        self.step = None if rate is None else 1.0 / rate
        self.period = period
        self.next_t = 0.0 if self.step is None else 0.5 * self.step

    def take(self, t: float) -> bool:
        if self.step is None:
            return True
        end = t + 0.5 * self.period
        if self.next_t >= end:
            return False
        while self.next_t < end:
            self.next_t += self.step
        return True


# Kept frames are held between decoding and warping up to this many bytes per clip; a longer clip
# is decoded a second time instead (memory stays bounded whatever the clip's length).
BUFFER_BYTES = 256 << 20


def align_clip(
    path: str | Path,
    cfg: AlignConfig,
    detector: Detector,
    keep_fps: float | None = None,
    *,
    buffer_bytes: int = BUFFER_BYTES,
) -> AlignedClip:
    """Detect, track and align the main face of one video, keeping faces at `keep_fps` (None:
    every sampled frame). One decoding pass: detection is fed while decoding
    (aver.faces.sparse_detection) and the kept frames are held for the warp (a second pass only
    when they exceed `buffer_bytes`)."""
    fps = sampled_fps(path, cfg.sample_fps)
    search = SparseDetection.from_config(detector, cfg)
    keeper = RateKeeper(keep_fps, 1.0 / fps)
    times: list[float] = []
    kept: list[int] = []
    held: list[np.ndarray] | None = []
    held_bytes = 0
    last: tuple[int, bool, av.VideoFrame] | None = None  # (index, searched, frame)
    for i, t, frame in iter_sampled(path, cfg.sample_fps):
        times.append(t)
        candidate, keep = i % cfg.detect_every == 0, keeper.take(t)
        last = (i, candidate, frame)
        if not (candidate or keep):
            continue
        rgb = frame.to_ndarray(format="rgb24")
        if candidate:
            search.add(i, rgb)
        if keep:
            kept.append(i)
            held_bytes += rgb.nbytes
            if held is not None and held_bytes <= buffer_bytes:
                held.append(rgb)
            else:
                held = None  # too long to hold: warp in a second pass
    n = len(times)
    if last is None:
        raise DataError("video has no frames", path=path, fix="rerun the extract stage")
    if not last[1]:
        search.add(last[0], last[2].to_ndarray(format="rgb24"))
    del last
    det_idx, dets = search.finish()
    track = track_faces(dets, det_idx, n, cfg.smoothing)
    if track is None or track.detection_rate < cfg.min_detection_rate:
        rate = 0.0 if track is None else track.detection_rate
        return AlignedClip(None, rate, fps, n)
    idx = np.asarray(kept, np.int64)
    faces = _warp_kept(path, cfg, track.landmarks, kept, held)
    arrays: dict[str, np.ndarray] = {
        "frames": faces,
        "times": np.asarray(times, np.float32)[idx],
        "detected": track.detected[idx],
        "landmarks": track.landmarks[idx].astype(np.float32),
    }
    return AlignedClip(arrays, track.detection_rate, fps, n)


def _warp_kept(
    path: str | Path,
    cfg: AlignConfig,
    landmarks: np.ndarray,
    kept: list[int],
    held: list[np.ndarray] | None,
) -> np.ndarray:
    """The aligned faces of the kept frames: from the held frames, else by decoding again."""
    faces = np.zeros((len(kept), cfg.size, cfg.size, 3), np.uint8)
    if held is not None:
        for j, (i, rgb) in enumerate(zip(kept, held)):
            faces[j] = align_face(rgb, landmarks[i], cfg.size)
        return faces
    slot = {i: j for j, i in enumerate(kept)}
    for i, _, frame in iter_sampled(path, cfg.sample_fps):
        if i in slot:
            faces[slot[i]] = align_face(frame.to_ndarray(format="rgb24"), landmarks[i], cfg.size)
    return faces


_DETECTORS: dict[str, Detector] = {}


def _detector(cfg: AlignConfig) -> Detector:
    """One detector per process (its threads were set by `aver.threads` in the pool worker)."""
    key = cfg.model_dump_json()
    if key not in _DETECTORS:
        _DETECTORS[key] = make_detector(cfg)
    return _DETECTORS[key]


def _source_stamp(path: str | Path) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _result_paths(work: str | Path, clip_id: str) -> tuple[Path, Path]:
    return Path(work) / f"{clip_id}.npz", Path(work) / f"{clip_id}.json"


def process_clip(job: ClipJob) -> dict:
    """Worker: align one clip and save its result (npz + json) atomically; never raises."""
    npz, meta_path = _result_paths(job.work, job.clip_id)
    start = time.perf_counter()
    meta: dict = {"clip_id": job.clip_id, "path": job.rel}
    try:
        meta["source"] = _source_stamp(job.video)
        clip = align_clip(job.video, job.cfg, _detector(job.cfg), job.keep_fps)
        meta.update(detection_rate=clip.detection_rate, fps=clip.fps, n_frames=clip.n_frames)
        if clip.arrays is None:
            meta["status"] = "failed"
            meta["reason"] = (
                f"face found in {clip.detection_rate:.0%} of {clip.n_frames} sampled frames "
                f"(< align.min_detection_rate {job.cfg.min_detection_rate:.0%})"
            )
        else:
            with atomic_path(npz, suffix=".npz") as tmp:
                # numpy's stub types **kwds against its allow_pickle: bool parameter
                np.savez(tmp, **clip.arrays)  # type: ignore[arg-type]
            meta["status"] = "ok"
    except Exception as err:  # undecodable media (av.error.*), bad data: record and go on
        meta.update(status="failed", reason=f"cannot align ({type(err).__name__}: {err})")
    meta["seconds"] = round(time.perf_counter() - start, 4)
    write_json(meta_path, meta)
    return meta


def _done(job: ClipJob) -> dict | None:
    npz, meta_path = _result_paths(job.work, job.clip_id)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("source") != _source_stamp(job.video):
            return None
    except (OSError, ValueError):
        return None
    if meta.get("status") == "ok" and not npz.is_file():
        return None
    return meta


def read_manifest(interim: str | Path) -> pd.DataFrame:
    """The extract stage's manifest.csv (clip_id, video, ...), sorted by clip_id."""
    return MANIFEST.read(interim, need=("video",)).sort_values("clip_id").reset_index(drop=True)


def _labels(root: str | Path) -> tuple[dict[str, str], list[str]]:
    """clip_id -> label from data/raw/index.csv, and the class order from dataset.json (QA plots
    only: either missing or malformed gives no labels, or the sorted labels as classes)."""
    labels: dict[str, str] = {}
    with contextlib.suppress(DataError):
        table = RAW_INDEX.read(root, need=("label",))
        labels = dict(zip(table["clip_id"], table["label"]))
    classes: list[str] = []
    with contextlib.suppress(DataError):
        classes = DatasetInfo.read(root).classes
    return labels, classes or sorted(set(labels.values()))


def write_plots(
    store: FaceStore,
    rates: list[float],
    root: str | Path,
    out: Path,
    threshold: float,
    per_class: int = 8,
) -> None:
    """Contact sheet per class and the detection-rate histogram under `out`/plots."""
    from aver.faces.plots import contact_sheet, detection_rate_plot, middle_face

    labels, classes = _labels(root)
    by_class: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for clip_id in store.clip_ids:
        cls = labels.get(clip_id, "unlabelled")
        faces = by_class.setdefault(cls, [])
        if len(faces) < per_class:
            faces.append(middle_face(store.load(clip_id)))
    contact_sheet(by_class, out / "plots" / "contact_sheet.png", per_class=per_class)
    detection_rate_plot(
        rates, out / "plots" / "detection_rate.csv", out / "plots" / "detection_rate.png",
        threshold=threshold,
    )  # fmt: skip


def run(params: Params) -> dict:
    """Align faces of every extracted clip into `align.out` (resumable; see module docstring)."""
    interim = Path(params.extract.out)
    manifest = read_manifest(interim)
    audio_only = sorted(manifest.loc[manifest["video"] == "", "clip_id"])
    if audio_only:
        log.info("align: %d clips have no video (audio-only): passed through", len(audio_only))
    manifest = manifest[manifest["video"] != ""]
    cfg = _with_weights(params) if len(manifest) else params.align
    keep = keep_rate(params)
    settings = {**output_settings(cfg), "kept_fps": keep}  # "cache" resolves to cache.video_fps
    stage: ResumableRun[ClipJob, dict] = ResumableRun(
        STAGE, cfg.out, settings, dirs=(CLIPS,), scratch=(CLIPS,), log=log
    )
    clips_dir = stage.work / CLIPS
    jobs = [
        ClipJob(
            row.clip_id, str((interim / row.video).resolve()), row.video, str(clips_dir), cfg, keep
        )
        for row in manifest.itertuples()
    ]
    start = time.perf_counter()
    results = dict(
        (job.clip_id, meta)
        for job, meta in stage.results(
            jobs, _done, process_clip, executor=cfg.executor, workers=cfg.workers,
            verb="aligned",
        )
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    failures = [
        Failure(m["clip_id"], m["path"], STAGE, m["reason"])
        for m in results.values()
        if m["status"] != "ok"
    ]
    sources = source_paths(params.data.root)
    total = len(jobs) + len(audio_only)  # passed-through clips are inputs that did not fail
    stage.record_failures(failures, total, cfg.max_failure_fraction, sources)
    ok = sorted(cid for cid, m in results.items() if m["status"] == "ok")
    write_store(stage.work, _packed(clips_dir, ok, results), max_bytes=cfg.shard_mb << 20)
    rates = [m["detection_rate"] for m in results.values() if "detection_rate" in m]
    write_plots(FaceStore(stage.work), rates, params.data.root, stage.work, cfg.min_detection_rate)
    stage.promote()
    summary = _summary(results, ok, len(failures), elapsed) | {"audio_only": len(audio_only)}
    log.info("align: %s", summary)
    return summary


def _with_weights(params: Params) -> AlignConfig:
    """align config with retinaface weights resolved (and downloaded) once, before the workers."""
    cfg = params.align
    if cfg.detector == "retinaface":
        from aver.faces.retinaface import resolve_weights

        weights = resolve_weights(cfg, params.download)
        cfg = cfg.model_copy(update={"retinaface_weights": str(weights)})
    return cfg


def _packed(clips_dir: Path, ok: list[str], results: dict[str, dict]) -> Iterator[tuple]:
    """(clip_id, arrays, meta) of the aligned clips, read back from their npz files; each file
    is deleted once read (its arrays are in the shard writer), so the faces exist once on disk.
    An interrupted pack loses no work a rerun cannot redo: a clip whose npz is gone is aligned
    again (`_done`)."""
    for cid in progress_bar(ok, desc="align: pack shards", unit="clip"):
        npz = _result_paths(clips_dir, cid)[0]
        with np.load(npz, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        npz.unlink()
        yield cid, arrays, results[cid]


def _summary(results: dict[str, dict], ok: list[str], failed: int, elapsed: float) -> dict:
    rates = [results[c]["detection_rate"] for c in ok]
    return {
        "clips": len(results),
        "aligned": len(ok),
        "failed": failed,
        "frames": sum(int(results[c]["n_frames"]) for c in ok),
        "mean_detection_rate": float(np.mean(rates)) if ok else 0.0,
        "seconds": round(elapsed, 3),
    }

"""The `cache` stage: raw index + extracted audio + aligned faces -> data/features/.

Pretrained encoders (`cache.audio_encoder` / `cache.face_encoder`, aver.encoders) are resolved
and loaded first, so missing weights fail before any clip is touched; their identity (name,
weights sha256, layers) joins the feature settings and meta.json. Clips are taken in clip_id
order and written shard by shard (`cache.shard_clips` per shard) into `<out>.partial/`
(aver.resumable), featurised `cache.encoder_batch` clips at a time; a finished shard (its
`done.json` matching the plan and the feature settings) is skipped on a rerun. Then per-fold
statistics are computed from training clips only, and the directory is promoted onto
`cache.out`. Clips without video (audio-only datasets) get an all-masked video window, and
meta.json's `modalities` is dataset.json's (["audio"]: only audio models train on it).
Each clip is cached whole, up to `cache.max_clip_s`: as the windows of `aver.windows` (one row
per window, cut exactly as `aver predict` cuts them), recorded in index.csv `n_windows` and
meta.json `windows`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aver.config import CacheConfig, Params
from aver.contracts import (
    FACE_INDEX,
    FEATURE_INDEX,
    MANIFEST,
    MODALITIES,
    RAW_INDEX,
    DatasetInfo,
    write_feature_meta,
    write_feature_stats,
)
from aver.errors import DataError
from aver.failures import Failure, source_paths
from aver.features.audio import load_wav
from aver.features.cache import ShardBuffer, shard_moments, shard_name
from aver.features.splits import make_splits, split_column, split_counts
from aver.features.stats import ClipMoments, pooled_stats
from aver.features.window import (
    ClipWindow,
    WindowSpec,
    clip_segments,
    clips_features,
    cut_windows,
)
from aver.io.atomic import write_json
from aver.output_settings import output_settings
from aver.progress import bar as progress_bar
from aver.resumable import ResumableRun
from aver.windows import AGGREGATE, capped_starts

if TYPE_CHECKING:
    from aver.encoders.loading import Encoders

log = logging.getLogger(__name__)
BASE_COLUMNS = list(FEATURE_INDEX.columns)


def face_loader(faces_dir: Path) -> Callable[[str], Mapping[str, np.ndarray]]:
    """clip_id -> face arrays, through aver.faces.store.FaceStore (or the raw shard reader)."""
    try:
        from aver.faces.store import FaceStore
    except ImportError:
        from aver.io.shards import ShardReader

        return ShardReader(faces_dir).get
    return FaceStore(faces_dir).load


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _finished(shard_dir: Path, plan_digest: str) -> dict[str, Any] | None:
    done = shard_dir / "done.json"
    if not done.exists():
        return None
    try:
        info = json.loads(done.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return info if info.get("plan") == plan_digest else None


@dataclass(frozen=True)
class Inputs:
    """What the cache stage reads: dataset.json, the raw index, manifest and face index."""

    dataset: DatasetInfo
    raw: pd.DataFrame
    manifest: pd.DataFrame  # indexed by clip_id
    faces_index: pd.DataFrame  # indexed by clip_id


def read_inputs(params: Params) -> Inputs:
    """The upstream tables (aver.contracts), labels checked against dataset.json's classes."""
    raw_dir = Path(params.data.root)
    dataset = DatasetInfo.read(raw_dir)
    raw = RAW_INDEX.read(raw_dir, need=("label", "speaker"))
    manifest = MANIFEST.read(params.extract.out, need=("audio", "video")).set_index("clip_id")
    faces_index = FACE_INDEX.read(params.align.out, need=()).set_index("clip_id")
    unknown = sorted(set(raw["label"]) - set(dataset.classes))
    if unknown:
        raise DataError(
            f"labels {unknown} not in dataset.json classes {dataset.classes}",
            path=RAW_INDEX.path(raw_dir),
            fix="rerun dvc repro download",
        )
    return Inputs(dataset, raw, manifest, faces_index)


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its clips and the digest of its settings and inputs."""

    name: str
    clip_ids: list[str]
    digest: str


def run(params: Params) -> Path:
    """Compute log-mel/MFCC and face clips per clip into a memory-mappable feature cache."""
    cfg, sample_rate = params.cache, params.extract.sample_rate
    inputs = read_inputs(params)
    splits, summary = make_splits(
        inputs.raw, protocol=cfg.protocol, n_folds=cfg.n_folds,
        default_folds=inputs.dataset.n_folds, val_fraction=cfg.val_fraction, seed=cfg.seed,
    )  # fmt: skip
    clips = usable_clips(inputs)
    ids = clips["clip_id"].tolist()
    encoders, identity = pretrained_encoders(cfg)  # missing weights fail here, before work
    settings = output_settings(cfg) | {"sample_rate": sample_rate, "encoders": identity}
    stage: ResumableRun[ShardJob, dict[str, Any]] = ResumableRun(
        "cache", cfg.out, settings, log=log
    )
    writer = ShardWriter(params, stage.work, inputs.manifest, len(ids), encoders)
    jobs = plan_shards(ids, inputs, settings, cfg.shard_clips)
    results = stage.results(jobs, writer.finished, writer, unit="shard", verb="cached")
    written, failures = _collect(stage.work, results, inputs.manifest)
    for stale in stage.work.glob("shard-*"):
        if stale.name not in written.shards:
            shutil.rmtree(stale)
    sources = source_paths(params.data.root)
    stage.record_failures(failures, len(ids), cfg.max_failure_fraction, sources)
    index = write_tables(
        stage.work, clips, written, splits, summary, classes=inputs.dataset.classes,
        dataset_name=inputs.dataset.name, cfg=cfg, sample_rate=sample_rate,
        spec=writer.spec, encoders=identity, modalities=inputs.dataset.modalities,
    )  # fmt: skip
    out = stage.promote()
    log.info("cached %d clips in %d shards -> %s", len(index), len(written.shards), out)
    return out


def named_encoders(cfg: CacheConfig) -> dict[str, Any]:
    """The encoders record without weights (computed features and crops, or no identity given):
    each modality's input by name."""
    return {"audio": {"name": cfg.audio_encoder}, "face": {"name": cfg.face_encoder}}


def pretrained_encoders(cfg: CacheConfig) -> tuple[Encoders | None, dict[str, Any]]:
    """The loaded pretrained encoders (None when both inputs are computed features) and the
    encoders' identity recorded in meta.json and the settings stamp."""
    if not (cfg.pretrained_audio or cfg.pretrained_face):
        return None, named_encoders(cfg)
    from aver.encoders.loading import load_encoders

    encoders = load_encoders(cfg, cfg.encoder_device)
    return encoders, encoders.identity()


def usable_clips(inputs: Inputs) -> pd.DataFrame:
    """The raw index rows with extracted audio and aligned faces (or no video at all: audio-only
    clips, which align passes through), in clip_id order."""
    raw = inputs.raw
    no_video = inputs.manifest.index[inputs.manifest["video"].fillna("") == ""]
    faces = raw["clip_id"].isin(inputs.faces_index.index) | raw["clip_id"].isin(no_video)
    usable = raw["clip_id"].isin(inputs.manifest.index) & faces
    clips = raw[usable].sort_values("clip_id", kind="stable").reset_index(drop=True)
    n_audio = int(clips["clip_id"].isin(no_video).sum())
    log.info(
        "%d of %d clips have audio and faces (%d of them audio only)", len(clips), len(raw), n_audio
    )
    return clips


def no_faces(size: int) -> dict[str, np.ndarray]:
    """The face arrays of a clip without video: no frame (its video window is all masked)."""
    return {
        "frames": np.zeros((0, size, size, 3), np.uint8),
        "times": np.zeros(0, np.float32),
        "detected": np.zeros(0, bool),
        "landmarks": np.zeros((0, 5, 2), np.float32),
    }


def plan_shards(
    ids: list[str], inputs: Inputs, settings: dict[str, Any], shard_clips: int
) -> list[ShardJob]:
    """`shard_clips` clips per shard; each shard's digest covers the settings and its inputs."""
    jobs = []
    for s, i in enumerate(range(0, len(ids), shard_clips)):
        chunk = ids[i : i + shard_clips]
        upstream = [
            (c, inputs.manifest.loc[c].to_dict(), _face_row(inputs.faces_index, c)) for c in chunk
        ]
        jobs.append(ShardJob(shard_name(s), chunk, _digest([settings, upstream])))
    return jobs


def _face_row(faces_index: pd.DataFrame, clip_id: str) -> dict[str, Any]:
    """A clip's face index row ({} for a clip without video)."""
    return faces_index.loc[clip_id].to_dict() if clip_id in faces_index.index else {}


def _collect(
    work: Path, results: list[tuple[ShardJob, dict[str, Any]]], manifest: pd.DataFrame
) -> tuple[ShardLog, list[Failure]]:
    """Where each clip went (and the shards' moments), and the clips that failed."""
    written, failures = ShardLog(), []
    for job, info in results:
        written.record(job.name, info["rows"], shard_moments(work / job.name, len(info["rows"])))
        failures += [
            Failure(f["clip_id"], str(manifest.at[f["clip_id"], "audio"]), "cache", f["reason"])
            for f in info["failures"]
        ]
    return written, failures


class ShardWriter:
    """Writes one shard of clip features into the work dir (`done.json` last); reusable.

    Clips are cut one by one (a clip that cannot be read is recorded as a failure) and
    featurised `cache.encoder_batch` at a time (one encoder forward per batch)."""

    def __init__(
        self,
        params: Params,
        work: Path,
        manifest: pd.DataFrame,
        n_clips: int,
        encoders: Encoders | None = None,
    ) -> None:
        cfg = params.cache
        self.cfg, self.work, self.manifest = cfg, work, manifest
        self.interim, self.sample_rate = Path(params.extract.out), params.extract.sample_rate
        self.load_faces = face_loader(Path(params.align.out))
        self.encoders = encoders
        face_dim = encoders.face_dim if encoders is not None and encoders.face else None
        self.spec = WindowSpec.from_config(cfg, self.sample_rate, face_dim=face_dim)
        self.no_faces = no_faces(self.spec.face_size)
        self.buffer = ShardBuffer(self.spec.shapes(), min(cfg.shard_clips, max(n_clips, 1)))

    def finished(self, job: ShardJob) -> dict[str, Any] | None:
        """The `done.json` of a shard an earlier run wrote from the same settings and inputs."""
        return _finished(self.work / job.name, job.digest)

    def __call__(self, job: ShardJob) -> dict[str, Any]:
        shard_dir = self.work / job.name
        self.buffer.clear()
        failures: list[dict[str, str]] = []
        batch: list[tuple[str, list[ClipWindow]]] = []
        for clip_id in progress_bar(
            job.clip_ids, desc=f"cache {job.name}", unit="clip", leave=False
        ):
            try:
                batch.append((clip_id, self.cut(clip_id)))
            except (DataError, ValueError, KeyError, OSError) as err:
                failures.append({"clip_id": clip_id, "reason": str(err)})
            if sum(len(w) for _, w in batch) >= self.cfg.encoder_batch:
                self._featurise(batch, failures)
                batch = []
        self._featurise(batch, failures)
        if shard_dir.exists():
            shutil.rmtree(shard_dir)
        self.buffer.write(shard_dir)
        info = {"plan": job.digest, "rows": list(self.buffer.clip_ids), "failures": failures}
        write_json(shard_dir / "done.json", info)
        return info

    def cut(self, clip_id: str) -> list[ClipWindow]:
        """The clip's windows (aver.windows.capped_starts: every `cache.hop_s` over at most
        `cache.max_clip_s` of it), cut as `aver predict` cuts them."""
        wave, rate = load_wav(self.interim / str(self.manifest.at[clip_id, "audio"]))
        has_video = bool(self.manifest.at[clip_id, "video"])
        faces = self.load_faces(clip_id) if has_video else self.no_faces
        cfg = self.cfg
        starts = capped_starts(len(wave) / rate, cfg.window_s, cfg.hop_s, cfg.max_clip_s, cfg.crop)
        return cut_windows(clip_segments(wave, rate, starts), rate, faces, self.spec)

    def _featurise(
        self, batch: list[tuple[str, list[ClipWindow]]], failures: list[dict[str, str]]
    ) -> None:
        """Features of the windows of a batch of clips into the buffer, a clip's windows in
        consecutive rows (a clip that fails is recorded, none of its rows kept)."""
        if not batch:
            return
        try:
            flat = [w for _, windows in batch for w in windows]
            arrays = iter(clips_features(flat, self.spec, self.encoders))
        except (DataError, ValueError) as err:  # one bad clip: retry one by one to find it
            if len(batch) == 1:
                failures.append({"clip_id": batch[0][0], "reason": str(err)})
                return
            for item in batch:
                self._featurise([item], failures)
            return
        for clip_id, windows in batch:
            n = len(self.buffer)
            mine = [next(arrays) for _ in windows]
            try:
                for window in mine:
                    self.buffer.add(clip_id, window)
            except ValueError as err:
                self.buffer.truncate(n)
                failures.append({"clip_id": clip_id, "reason": str(err)})


@dataclass
class ShardLog:
    """What the written shards hold: clip -> (shard, row) and per-clip moments in row order."""

    placed: dict[str, tuple[str, int]] = field(default_factory=dict)  # clip -> its first row
    windows: dict[str, int] = field(default_factory=dict)  # clip -> its rows (windows)
    moments: list[ClipMoments] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # the clip of each row, in row order
    shards: list[str] = field(default_factory=list)

    def record(self, shard: str, rows: list[str], moments: ClipMoments) -> None:
        """A shard's rows: the clip id of each (a clip's windows are consecutive rows)."""
        for row, clip_id in enumerate(rows):
            if clip_id not in self.windows:
                self.placed[clip_id] = (shard, row)
            self.windows[clip_id] = self.windows.get(clip_id, 0) + 1
        self.moments.append(moments)
        self.ids += rows
        self.shards.append(shard)


def write_tables(
    work: Path,
    clips: pd.DataFrame,
    written: ShardLog,
    splits: pd.DataFrame,
    summary: dict[str, Any],
    *,
    classes: list[str],
    dataset_name: str | None,
    cfg: CacheConfig,
    sample_rate: int,
    spec: WindowSpec | None = None,
    encoders: dict[str, Any] | None = None,
    modalities: list[str] | None = None,
) -> pd.DataFrame:
    """Write index.csv, stats.json (fold k: its training clips only) and meta.json into `work`."""
    summary = copy.deepcopy(summary)
    n_folds = summary["n_folds"]
    index = clips[clips["clip_id"].isin(list(written.placed))].copy()
    index["label_idx"] = index["label"].map({c: i for i, c in enumerate(classes)})
    index["fold"] = index["clip_id"].map(splits["fold"]).astype(int)
    index["shard"] = index["clip_id"].map(lambda c: written.placed[c][0])
    index["row"] = index["clip_id"].map(lambda c: written.placed[c][1])
    for k in range(n_folds):
        index[split_column(k)] = index["clip_id"].map(splits[split_column(k)])
    index["n_windows"] = index["clip_id"].map(written.windows).astype(int)
    extra = [c for c in clips.columns if c not in {*BASE_COLUMNS, "path", "n_windows"}]
    splits_cols = [split_column(k) for k in range(n_folds)]
    index = index[BASE_COLUMNS + splits_cols + ["n_windows"] + extra]
    index = index.reset_index(drop=True)

    stats = _fold_stats(index, written, n_folds)
    counts = split_counts(index, n_folds)
    for k, info in summary["folds"].items():
        info.update(counts[k])
    spec = spec or WindowSpec.from_config(cfg, sample_rate)
    meta = _feature_meta(index, written, summary, classes, dataset_name, cfg, spec, encoders)
    meta["modalities"] = list(modalities or MODALITIES)
    FEATURE_INDEX.write(work, index)
    write_feature_stats(work, stats)
    write_feature_meta(work, meta)
    return index


def window_record(cfg: CacheConfig) -> dict[str, Any]:
    """How a clip becomes windows and scores (meta.json `windows`; the model card's input)."""
    return {
        "window_s": cfg.window_s,
        "hop_s": cfg.hop_s,
        "max_clip_s": cfg.max_clip_s,
        "crop": cfg.crop,
        "aggregate": AGGREGATE,
        "train": "one random window per clip per epoch",
    }


def _fold_stats(index: pd.DataFrame, written: ShardLog, n_folds: int) -> dict[str, Any]:
    """Per fold k, the normalisation stats pooled over the windows of fold k's training clips
    only."""
    all_m = ClipMoments.concat(written.moments)
    row_clips = np.asarray(written.ids, dtype=object)
    stats = {}
    for k in range(n_folds):
        train = index.loc[index[split_column(k)] == "train", "clip_id"]
        select = np.isin(row_clips, train.to_numpy(dtype=object))
        stats[str(k)] = pooled_stats(all_m, select).to_dict()
    return stats


def _feature_meta(
    index: pd.DataFrame,
    written: ShardLog,
    summary: dict[str, Any],
    classes: list[str],
    dataset_name: str | None,
    cfg: CacheConfig,
    spec: WindowSpec,
    encoders: dict[str, Any] | None,
) -> dict[str, Any]:
    """meta.json: classes, splits, window and array shapes, audio/video settings, encoders,
    shards."""
    shapes = spec.shapes()
    a = spec.audio
    if spec.encoder:
        enc = spec.encoder
        audio_geometry = {
            "n_bins": enc.dim,
            "layers": list(spec.layers),
            "hop_s": enc.hop_s,
            "receptive_field_s": enc.receptive_field_s,
            "frame_rate": 1 / enc.hop_s,
        }
    else:
        audio_geometry = {"n_bins": a.n_bins, "win_length": a.win_length,
                          "hop_length": a.hop_length, "n_fft": a.n_fft,
                          "frame_rate": a.sample_rate / a.hop_length}  # fmt: skip
    return {
        "dataset": dataset_name,
        "classes": classes,
        "n_clips": len(index),
        "protocol": cfg.protocol,
        "leaky": summary["leaky"],
        "n_folds": summary["n_folds"],
        "splits": summary,
        "window_s": cfg.window_s,
        "crop": cfg.crop,
        "windows": window_record(cfg),
        "n_windows": len(written.ids),
        "audio": {
            "feature": cfg.audio_encoder,
            "n_frames": spec.audio_frames,
            "sample_rate": spec.sample_rate,
            **audio_geometry,
        },
        "video": {
            "fps": cfg.video_fps,
            "size": cfg.face_size,
            "n_frames": spec.video_frames,
            "encoder": cfg.face_encoder,
            "dim": spec.face_dim,
        },
        "encoders": encoders or named_encoders(cfg),
        "arrays": {k: [list(s), d] for k, (s, d) in shapes.items()},
        "shards": written.shards,
        "config": cfg.model_dump(mode="json"),
    }

"""Preprocessing benchmark (not a test): aver's extract+align against a naive reference.

The reference is written the way the public AVT-CA code preprocesses video: decode every frame
of the source with OpenCV, run MTCNN on one full-resolution frame at a time, take the first
box, crop and resize. It keeps the same frames aver keeps (sampled at `align.sample_fps`), so
both produce the same number of face crops. aver runs the real stages: `aver.media.pipeline.run`
(ffmpeg -> 25 fps, <= 320 px) then `aver.faces.pipeline.run` (batched MTCNN on every 5th frame
shrunk to 256 px, tracking, 5-point alignment, shards).

Source clips are generated: real photos (Grace Hopper, the astronaut) moving over a noisy
1280x720 30 fps background with a tone on the audio track, like a RAVDESS clip. Each method runs
in its own process; peak memory is the largest summed PSS (proportional set size: shared pages
split between the processes sharing them) of that process and its children.

    .venv/bin/python bench/preprocess.py --clips 4 --seconds 3

`--floors` instead measures aver against the decode floor (issue 20): PyAV decoding every frame
to RGB of the same clips in the same run (as many processes as the stages' workers), on demo
clips (aver's demo dataset, 224x224) and on generated 1280x720 clips (`--src`: also the stages
of another checkout, e.g. a worktree of an older commit, on the same clips, one after the other
per dataset). It reports align / floor of the extracted clips, extract + align / floor of the
sources, the detection rate and the landmark error of the aligned crops
(aver.faces.quality.template_error, px at the stored size):

    .venv/bin/python bench/preprocess.py --floors --clips 8 --seconds 3
    .venv/bin/python bench/preprocess.py --floors --clips 48 --seconds 3 --src ../before/src
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REF_SIZE = 112


# ----------------------------------------------------------------------------- source clips
def _photos() -> list[np.ndarray]:
    from matplotlib import cbook, image
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.ascontiguousarray(image.imread(fh, format="jpg")[100:380, 140:390, :3])
    return [hopper, np.ascontiguousarray(data.astronaut()[30:210, 150:300])]


def write_source(
    path: Path,
    photo: np.ndarray,
    seconds: float,
    fps: int,
    seed: int,
    width: int = 1280,
    height: int = 720,
) -> None:
    """An mp4 (H.264 + AAC) of `photo` drifting and zooming slightly over a noisy background."""
    import av
    import cv2

    rng = np.random.default_rng(seed)
    base = np.linspace(50, 190, width, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(base, (height, width, 3))
    noise = [rng.normal(0, 8, (height, width, 3)).astype(np.float32) for _ in range(4)]
    n = round(seconds * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast"}
        audio = out.add_stream("aac", rate=48000)
        for t in range(n):
            frame = np.clip(base + noise[t % 4], 0, 255).astype(np.uint8)
            h = int(430 + 30 * np.sin(t / 20 + seed))
            w = round(photo.shape[1] * h / photo.shape[0])
            x = int(width / 2 - w / 2 + 200 * np.sin(t / 25 + seed))
            y = int(height / 2 - h / 2 + 40 * np.cos(t / 30))
            frame[y : y + h, x : x + w] = cv2.resize(photo, (w, h))
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(int(48000 * seconds)) / 48000)
        tone = tone.astype(np.float32)[None, :]
        for start in range(0, tone.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts = 48000, start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


def make_dataset(root: Path, clips: int, seconds: float, fps: int) -> None:
    import pandas as pd

    raw = root / "raw"
    (raw / "media").mkdir(parents=True, exist_ok=True)
    photos = _photos()
    rows = []
    for i in range(clips):
        clip_id = f"clip{i:03d}"
        write_source(raw / "media" / f"{clip_id}.mp4", photos[i % 2], seconds, fps, seed=i)
        rows.append(
            {
                "clip_id": clip_id,
                "path": f"media/{clip_id}.mp4",
                "label": ["neutral", "happy"][i % 2],
                "speaker": str(i % 2),
            }
        )
    pd.DataFrame(rows).to_csv(raw / "index.csv", index=False)
    (raw / "dataset.json").write_text(
        json.dumps(
            {"name": "bench", "classes": ["neutral", "happy"], "n_folds": 2, "n_clips": clips}
        )
    )


# ----------------------------------------------------------------------------- the two methods
def run_reference(root: Path, sample_fps: float) -> dict:
    """Naive: OpenCV decode of every source frame, MTCNN per frame, the first box wins."""
    import cv2
    import pandas as pd
    from facenet_pytorch import MTCNN

    start = time.perf_counter()
    mtcnn = MTCNN(device="cpu")
    index = pd.read_csv(root / "raw" / "index.csv", dtype=str)
    frames = hits = 0
    for rel in index["path"]:
        cap = cv2.VideoCapture(str(root / "raw" / rel))
        fps = cap.get(cv2.CAP_PROP_FPS)
        step = 1.0 / min(sample_fps, fps)
        next_t, k, faces = 0.5 * step, 0, []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            end = (k + 1) / fps
            k += 1
            if next_t >= end:
                continue
            while next_t < end:
                next_t += step
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            boxes, _ = mtcnn.detect(rgb)
            crop = np.zeros((REF_SIZE, REF_SIZE, 3), np.uint8)
            if boxes is not None:
                x0, y0, x1, y1 = np.clip(boxes[0], 0, None).astype(int)
                if x1 > x0 and y1 > y0:
                    crop = cv2.resize(rgb[y0:y1, x0:x1], (REF_SIZE, REF_SIZE))
                    hits += 1
            faces.append(crop)
            frames += 1
        cap.release()
        np.stack(faces)
    return {
        "seconds": time.perf_counter() - start,
        "clips": len(index),
        "frames": frames,
        "detection_rate": hits / max(frames, 1),
    }


def run_aver(root: Path, workers: int) -> dict:
    """The real extract and align stages with default parameters."""
    import pandas as pd

    from aver.config import parse_params
    from aver.faces.pipeline import run as align
    from aver.media.pipeline import run as extract

    params = parse_params(
        {
            "data": {"root": str(root / "raw")},
            "extract": {"out": str(root / "interim"), "workers": workers},
            "align": {"out": str(root / "faces"), "workers": workers},
        }
    )
    start = time.perf_counter()
    extract(params)
    t_extract = time.perf_counter() - start
    align(params)
    total = time.perf_counter() - start
    index = pd.read_csv(root / "faces" / "index.csv")
    n_clips = len(pd.read_csv(root / "raw" / "index.csv"))
    frames = int(index["n_frames"].sum())
    detected = float((index["detection_rate"] * index["n_frames"]).sum())  # failed clips: 0
    return {
        "seconds": total,
        "extract_seconds": t_extract,
        "clips": n_clips,
        "frames": frames,
        "detection_rate": detected / max(frames, 1),
    }


# ----------------------------------------------------------------------------- floors
def make_demo_dataset(root: Path, clips: int) -> None:
    """`clips` (rounded up to 4 per speaker) clips of aver's demo dataset as a folder dataset."""
    import pandas as pd

    from aver.config import DemoConfig
    from aver.datasets.demo import generate

    raw = root / "raw"
    speakers = max(2, -(-clips // 4))
    paths = generate(raw, DemoConfig(speakers=speakers, clips_per_class=1, workers=2))
    rows = [
        {"clip_id": f"clip{i:03d}", "path": p.relative_to(raw).as_posix(),
         "label": ["neutral", "happy"][i % 2], "speaker": str(i % speakers)}
        for i, p in enumerate(paths)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(raw / "index.csv", index=False)
    (raw / "dataset.json").write_text(
        json.dumps({"name": "bench", "classes": ["neutral", "happy"], "n_clips": len(rows)})
    )


def _decode_rgb(path: str) -> int:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24").size)


def decode_floor(paths: list[Path], workers: int) -> tuple[float, int]:
    """Seconds to decode every frame of `paths` to RGB in a plain pool of `workers` forked
    processes (no aver code: its pool once imported torch in each worker, seconds that made the
    floor look higher), and the frames decoded."""
    import multiprocessing

    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        frames = sum(pool.map(_decode_rgb, [str(p) for p in paths], chunksize=1))
    return time.perf_counter() - start, frames


def run_floors(root: Path, workers: int) -> dict:
    """Floors, extract and align (the real stages, default params) on the clips under root/raw."""
    import pandas as pd

    from aver.config import parse_params
    from aver.faces.mtcnn import MtcnnDetector
    from aver.faces.pipeline import run as align
    from aver.faces.quality import template_error
    from aver.faces.store import FaceStore
    from aver.media.pipeline import run as extract

    params = parse_params(
        {
            "data": {"root": str(root / "raw")},
            "extract": {"out": str(root / "interim"), "workers": workers},
            "align": {"out": str(root / "faces"), "workers": workers},
        }
    )
    sources = [root / "raw" / p for p in pd.read_csv(root / "raw" / "index.csv")["path"]]
    floor_src, frames_src = decode_floor(sources, workers)
    start = time.perf_counter()
    extract(params)
    t_extract = time.perf_counter() - start
    extracted = sorted((root / "interim").rglob("*.mp4"))
    floor_ext, frames_ext = decode_floor(extracted, workers)
    start = time.perf_counter()
    summary = align(params)
    t_align = time.perf_counter() - start
    store, detector = FaceStore(root / "faces"), MtcnnDetector()
    errors = [
        e for cid in store.clip_ids for e in template_error(store.load(cid)["frames"], detector)
    ]
    return {
        "clips": len(sources),
        "source_frames": frames_src,
        "floor_source_s": floor_src,
        "extract_s": t_extract,
        "floor_extracted_s": floor_ext,
        "extracted_frames": frames_ext,
        "align_s": t_align,
        "detection_rate": summary["mean_detection_rate"],
        "aligned": summary["aligned"],
        "landmark_error_px": float(np.nanmean(errors)) if errors else float("nan"),
        "faces_found": float(np.mean(~np.isnan(errors))) if errors else 0.0,
    }


def floors_table(results: dict[str, dict]) -> str:
    lines = [
        "| clips | n | floor src s | extract s | floor ext s | align s | align / floor ext "
        "| extract+align / floor src | detection rate | landmark err px |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['clips']} | {r['floor_source_s']:.2f} | {r['extract_s']:.2f} | "
            f"{r['floor_extracted_s']:.2f} | {r['align_s']:.2f} | "
            f"{r['align_s'] / r['floor_extracted_s']:.1f}x | "
            f"{(r['extract_s'] + r['align_s']) / r['floor_source_s']:.1f}x | "
            f"{r['detection_rate']:.3f} | {r['landmark_error_px']:.2f} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- harness
def measure(method: str, root: Path, args: argparse.Namespace) -> dict:
    """Run one method in a child process; poll its process tree for peak summed PSS."""
    import psutil

    out = root / f"{method}.json"
    cmd = [
        sys.executable,
        __file__,
        "--method",
        method,
        "--root",
        str(root),
        "--workers",
        str(args.workers),
        "--sample-fps",
        str(args.sample_fps),
    ]
    proc = subprocess.Popen(cmd)
    parent, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, _tree_pss(parent))
        time.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"{method} failed with exit code {proc.returncode}")
    result = json.loads(out.read_text())
    result["peak_mib"] = peak / 2**20
    return result


def _tree_pss(parent) -> int:
    """Summed PSS of a process and its descendants (0 for those that just exited)."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
    return total


def table(ref: dict, ours: dict) -> str:
    rows = [("naive reference (OpenCV + per-frame MTCNN)", ref), ("aver extract + align", ours)]
    lines = [
        "| method | clips | frames | seconds | clips/s | frames/s | peak PSS MiB "
        "| detection rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['clips']} | {r['frames']} | {r['seconds']:.1f} | "
            f"{r['clips'] / r['seconds']:.3f} | {r['frames'] / r['seconds']:.1f} | "
            f"{r['peak_mib']:.0f} | {r['detection_rate']:.3f} |"
        )
    speed = (ours["clips"] / ours["seconds"]) / (ref["clips"] / ref["seconds"])
    lines.append("")
    lines.append(
        f"throughput ratio aver/reference: **{speed:.1f}x** (clips/s); extract took "
        f"{ours['extract_seconds']:.1f} s of aver's {ours['seconds']:.1f} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=30, help="source frame rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample-fps", type=float, default=25.0)
    parser.add_argument("--root", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--floors", action="store_true", help="aver vs the decode floor")
    parser.add_argument(
        "--src", type=Path, help="--floors: run the stages of another checkout's src (before)"
    )
    parser.add_argument("--method", choices=["reference", "aver", "floors"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.floors:
        import logging

        logging.basicConfig(level=logging.WARNING)
        with tempfile.TemporaryDirectory(prefix="aver-bench-") as tmp:
            root = args.root or Path(tmp)
            print(f"generating {args.clips} demo clips and {args.clips} 1280x720 clips ...")
            make_demo_dataset(root / "demo", args.clips)
            make_dataset(root / "hd", args.clips, args.seconds, args.fps)
            results = {}
            variants = [("this checkout", None)] + ([(f"{args.src}", args.src)] if args.src else [])
            for name, sub in [
                ("demo (224x224, 25 fps)", "demo"),
                (f"1280x720 {args.fps} fps", "hd"),
            ]:
                for label, src in variants:
                    for old in ("interim", "faces"):
                        shutil.rmtree(root / sub / old, ignore_errors=True)
                    cmd = [
                        sys.executable,
                        __file__,
                        "--method",
                        "floors",
                        "--root",
                        str(root / sub),
                    ]
                    env = dict(os.environ, PYTHONPATH=str(src)) if src else None
                    subprocess.run([*cmd, "--workers", str(args.workers)], check=True, env=env)
                    key = f"{name}, {label}" if args.src else name
                    results[key] = json.loads((root / sub / "floors.json").read_text())
            print(json.dumps(results, indent=1))
            print(floors_table(results))
        return

    if args.method:  # child process
        import logging

        logging.basicConfig(level=logging.WARNING)
        if args.method == "floors":
            result = run_floors(args.root, args.workers)
        elif args.method == "reference":
            result = run_reference(args.root, args.sample_fps)
        else:
            result = run_aver(args.root, args.workers)
        (args.root / f"{args.method}.json").write_text(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="aver-bench-") as tmp:
        root = args.root or Path(tmp)
        print(f"generating {args.clips} clips of {args.seconds} s, 1280x720 @ {args.fps} fps ...")
        make_dataset(root, args.clips, args.seconds, args.fps)
        ref = measure("reference", root, args)
        ours = measure("aver", root, args)
        print(table(ref, ours))


if __name__ == "__main__":
    main()

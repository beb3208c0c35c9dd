"""A small video check for weights/MODEL_CARD.md, from clips made here: each real val face
photo of ``../shared/data/faces`` (DFDC and UTKFace face crops, read by path, never copied) is
animated (slow pan and zoom on a grainy background, 16 frames at 8 fps), encoded as H.264 and
transcoded once more at a lower quality (a chat app's recompression); its fake twin is the same
clip made from a landmark self-blended copy of the face (detector/training/sbi.py; one blend per
clip). Every clip goes through the served video path (served finder, shipped weights, 8 sampled
frames), and the per-track rules are compared: mean (served), max, top-third mean, median; the
still photos through the image path beside them. Needs the [train] extra (landmarks).

    python scripts/eval_video.py [--per-source 15] [--frames 8] [--threads 1]
"""

# ruff: noqa: T201  (a script: it prints its table)
from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detector.errors import DetectorError  # noqa: E402
from detector.faces import Box  # noqa: E402
from detector.factory import build_classifier, build_pipeline  # noqa: E402
from detector.training.metrics import roc_auc  # noqa: E402
from detector.training.sbi import (  # noqa: E402
    LandmarkFinder,
    face_rect,
    landmark_self_blend,
    predictor_path,
)
from detector.video import VideoPipeline  # noqa: E402
from detector.video_results import VideoLimits  # noqa: E402

FACES = REPO.parent / "shared" / "data" / "faces"
W, H, SIDE = 640, 480, 320


def _encode(frames: list[np.ndarray], fps: int, crf: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf)}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def make_clip(face: np.ndarray, rng: np.random.Generator, n: int = 16, fps: int = 8) -> bytes:
    img = Image.fromarray(face)
    dx, zoom = rng.uniform(-80, 80), rng.uniform(1.0, 1.15)
    frames = []
    for i in range(n):
        k = i / (n - 1)
        side = round(SIDE * (1 + (zoom - 1) * k))
        canvas = Image.new("RGB", (W, H), (100, 100, 100))
        x = round((W - side) / 2 + dx * (k - 0.5))
        canvas.paste(img.resize((side, side), Image.Resampling.BILINEAR), (x, (H - side) // 2))
        grain = rng.normal(0, 4, (H, W, 1)).astype(np.int16)
        frames.append(np.clip(np.asarray(canvas, np.int16) + grain, 0, 255).astype(np.uint8))
    first = _encode(frames, fps, 23)
    with av.open(io.BytesIO(first)) as again:  # the recompression a chat app applies
        decoded = [f.to_ndarray(format="rgb24") for f in again.decode(video=0)]
    return _encode(decoded, fps, 30)


def still(face: np.ndarray) -> bytes:
    canvas = Image.new("RGB", (W, H), (100, 100, 100))
    canvas.paste(Image.fromarray(face).resize((SIDE, SIDE)), ((W - SIDE) // 2, (H - SIDE) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-source", type=int, default=15)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    model = predictor_path()
    if model is None or not (FACES / "manifest.csv").exists():
        sys.exit("needs the [train] extra and ../shared/data/faces")
    landmarks = LandmarkFinder(model)
    with (FACES / "manifest.csv").open(encoding="utf-8") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["split"] == "val" and r["label"] == "real" and r["crop"] == "face"
        ]
    picked: list[dict[str, str]] = []
    for source in ("dfdc", "utkface"):
        picked += sorted((r for r in rows if r["source"] == source), key=lambda r: r["sha256"])[
            : args.per_source
        ]
    classifier = build_classifier(None, threads=args.threads)
    pipeline = build_pipeline(classifier)
    video = VideoPipeline(pipeline, VideoLimits(max_frames=args.frames))
    rng = np.random.default_rng(18)
    results: list[tuple[int, dict[str, float]]] = []
    frame_scores: list[tuple[int, float]] = []
    stills: list[tuple[int, float]] = []
    missed = 0
    t0 = time.perf_counter()
    for row in picked:
        rgb = np.asarray(Image.open(FACES / row["path"]).convert("RGB"))
        box = face_rect(Box(0, 0, rgb.shape[1], rgb.shape[0]))
        fake = landmark_self_blend(rgb, landmarks(rgb, box), rng)
        for label, face in ((0, rgb), (1, fake)):
            seed = int(rng.integers(1 << 31))
            try:
                got = video.analyze(make_clip(face, np.random.default_rng(seed)))
                image = pipeline.analyze(still(face))
            except DetectorError as exc:
                missed += 1
                print(f"{row['path']} ({'fake' if label else 'real'}): {exc}", file=sys.stderr)
                continue
            top = got.top
            results.append((label, {"mean": top.p_fake, "max": top.p_max,
                                    "top-third mean": top.p_top_mean,
                                    "median": top.p_median}))  # fmt: skip
            frame_scores += [(label, s.p_fake) for s in top.sightings]
            stills.append((label, image.p_fake))
    elapsed = time.perf_counter() - t0
    labels = np.array([lab for lab, _ in results])
    n_real, n_fake = int((labels == 0).sum()), int((labels == 1).sum())
    print(f"{len(picked)} sources ({args.per_source} DFDC + {args.per_source} UTKFace val reals); "
          f"{n_real} real and {n_fake} fake clips scored, {missed} without a verdict; "
          f"{args.frames} frames each; {elapsed:.0f} s; model {classifier.config.name}")
    low, high = classifier.config.thresholds
    print()
    print("| score | AUC | real clips ≥ high (false alarms) | fake clips ≥ high (caught) | "
          "fake clips < low (missed) |")
    print("|---|---|---|---|---|")
    for rule in ("mean", "max", "top-third mean", "median"):
        s = np.array([r[rule] for _, r in results])
        served = " (served)" if rule == "mean" else ""
        print(f"| video, {rule}{served} | {roc_auc(labels, s):.3f} | "
              f"{(s[labels == 0] >= high).mean():.0%} | {(s[labels == 1] >= high).mean():.0%} | "
              f"{(s[labels == 1] < low).mean():.0%} |")
    fl = np.array([lab for lab, _ in frame_scores])
    fs = np.array([p for _, p in frame_scores])
    print(f"| single frames ({len(fs)}) | {roc_auc(fl, fs):.3f} | "
          f"{(fs[fl == 0] >= high).mean():.0%} | {(fs[fl == 1] >= high).mean():.0%} | "
          f"{(fs[fl == 1] < low).mean():.0%} |")
    sl = np.array([lab for lab, _ in stills])
    ss = np.array([p for _, p in stills])
    print(f"| the still photo, image path (JPEG q90) | {roc_auc(sl, ss):.3f} | "
          f"{(ss[sl == 0] >= high).mean():.0%} | {(ss[sl == 1] >= high).mean():.0%} | "
          f"{(ss[sl == 1] < low).mean():.0%} |")


if __name__ == "__main__":
    main()

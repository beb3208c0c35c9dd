"""Video figures for BENCHMARKS.md: a 10 s 1280x720 30 fps H.264 clip (the sample face moving
over a grainy background, made here), checked through the detector service with the shipped
weights, side by side: decoding alone, then end to end with the served finder at 8/16/32
sampled frames and with the HOG finder at 32. Prints a Markdown table; writes nothing to the
repository.

    python scripts/bench_video.py [--repeats 3] [--threads N]
"""

# ruff: noqa: T201  (a script: it prints its table)
from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detector.factory import build_classifier, build_pipeline  # noqa: E402
from detector.service import DetectorService, ServiceOptions  # noqa: E402
from detector.tools.bench import machine_description  # noqa: E402
from detector.video import decode_video  # noqa: E402
from detector.video_results import VideoLimits  # noqa: E402


def make_clip(seconds: float = 10.0, fps: int = 30, width: int = 1280, height: int = 720) -> bytes:
    head = Image.open(REPO / "samples" / "astronaut.jpg").convert("RGB")
    head = head.crop((125, 22, 325, 222)).resize((400, 400))  # face ~190 px wide
    n = round(seconds * fps)
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(n):
            canvas = Image.new("RGB", (width, height), (96, 104, 112))
            x = round((width - 400) * i / (n - 1))
            y = 160 + round(60 * np.sin(i / 15))
            canvas.paste(head, (x, y))
            # Sensor-like grain, so the bitrate is a camera's (~1 MB/s), not a cartoon's.
            grain = rng.normal(0, 6, (height, width, 1)).astype(np.int16)
            rgb = np.clip(np.asarray(canvas, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


async def _e2e(pipeline: object, clip: bytes, frames: int) -> tuple[float, dict[str, float], int]:
    options = ServiceOptions(video_limits=VideoLimits(max_frames=frames))
    async with DetectorService(pipeline, options) as service:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        result = await service.analyze_video(clip, annotate=True)
        total = time.perf_counter() - t0
    return total, result.timings_ms, sum(t.frames for t in result.tracks)


async def _image_beside_video(pipeline: object, clip: bytes, image: bytes) -> tuple[float, float]:
    """An image check's time alone, then while a 32-frame video is being scored."""
    async with DetectorService(pipeline) as service:  # type: ignore[arg-type]
        await service.analyze(image)  # warm
        t0 = time.perf_counter()
        await service.analyze(image)
        alone = time.perf_counter() - t0
        video = asyncio.create_task(service.analyze_video(clip))
        while service.stats.batches < 3:  # noqa: ASYNC110 - the video is in the model
            await asyncio.sleep(0.005)
        t0 = time.perf_counter()
        await service.analyze(image)
        beside = time.perf_counter() - t0
        await video
    return alone, beside


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only-fairness", action="store_true")
    args = parser.parse_args()
    clip = make_clip()
    if args.only_fairness:
        classifier = build_classifier(None, threads=args.threads)
        pipeline = build_pipeline(classifier)
        image = (REPO / "samples" / "astronaut.jpg").read_bytes()
        runs = [asyncio.run(_image_beside_video(pipeline, clip, image))
                for _ in range(args.repeats)]  # fmt: skip
        print("| image check (astronaut.jpg) | alone | while a 32-frame 720p video is scored |")
        print("|---|---|---|")
        print(f"| median of {args.repeats} | {statistics.median(r[0] for r in runs):.2f} s | "
              f"{statistics.median(r[1] for r in runs):.2f} s |")
        return
    classifier = build_classifier(None, threads=args.threads)
    print(f"machine: {machine_description()}; torch threads {args.threads or 'all'}")
    print(f"clip: 10 s, 1280x720, 30 fps, H.264, {len(clip) / 1e6:.1f} MB; "
          f"model {classifier.config.name}, {classifier.config.input_size} px, "
          f"{classifier.options.precision}")
    decode = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        decoded = decode_video(clip)
        decode.append(time.perf_counter() - t0)
    d = statistics.median(decode)
    print()
    print("| variant | sampled frames | sightings | median end to end | sampled frames/s | "
          "decode | faces | queue + model | contact sheet |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| decode only (all 300 frames read, 32 kept) | {len(decoded.frames)} | — | "
          f"{d:.2f} s | {len(decoded.frames) / d:.0f} | {300 / d:.0f} decoded frames/s | — | — "
          "| — |")
    variants = [("mtcnn-rot", 8), ("mtcnn-rot", 16), ("mtcnn-rot", 32), ("hog", 32)]
    for finder, frames in variants:
        pipeline = build_pipeline(classifier, finder=finder)
        runs = [asyncio.run(_e2e(pipeline, clip, frames)) for _ in range(args.repeats)]
        totals = [r[0] for r in runs]
        mid = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        t = mid[1]
        print(f"| {finder} (served)" if finder == "mtcnn-rot" else f"| {finder}", end="")
        print(f" | {frames} | {mid[2]} | {statistics.median(totals):.2f} s "
              f"(min {min(totals):.2f}) | {frames / statistics.median(totals):.1f} | "
              f"{t.get('decode', 0) / 1000:.2f} s | {t.get('faces', 0) / 1000:.2f} s | "
              f"{t.get('queue_and_model', 0) / 1000:.2f} s | "
              f"{t.get('contact_sheet', 0) / 1000:.2f} s |")


if __name__ == "__main__":
    main()

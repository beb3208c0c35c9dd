"""``deepfake-bot bench``: side-by-side performance figures for BENCHMARKS.md.

Every comparison runs in the same process on the same machine, and reports ratios:
- the network: the naive reference way (fp32, batch 1, whole image resized, contiguous) against
  the project's variants (channels_last, bf16 autocast, batching), per-face latency and
  throughput, plus how far bf16 probabilities move from fp32;
- end to end: bytes → Analysis through the service for a 1280x853 JPEG with one face (p50/p95);
- concurrency: images/s with 32 concurrent requests against one at a time;
- memory: RSS after load and growth over many analyses.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import gc
import io
import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psutil
import torch
from PIL import Image
from rich.console import Console
from rich.progress import Progress

from detector.commands import classifier_from_args
from detector.config import ModelConfig
from detector.ensemble import LogitEnsemble
from detector.errors import CheckpointError, DetectorError
from detector.factory import available_cores, build_pipeline, runtime_options
from detector.model import BF16_TOLERANCE, Classifier, RuntimeOptions, build_xception
from detector.pipeline import Pipeline
from detector.preprocess import face_crop, full_frame
from detector.service import DetectorService, ServiceOptions

_log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "astronaut.jpg"


def _rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    flags = []
    if torch.backends.cpu.get_cpu_capability():
        flags.append(torch.backends.cpu.get_cpu_capability())
    return (
        f"{cpu}, {available_cores()} cores ({', '.join(flags)}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM; Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"
    )


def scene_jpeg(width: int = 1280, height: int = 853) -> bytes:
    """A width x height JPEG with one face (the public-domain astronaut portrait)."""
    face = Image.open(SAMPLE).convert("RGB").resize((height, height), Image.Resampling.BICUBIC)
    grad = np.linspace(40, 200, width, dtype=np.float32)
    bg = np.stack([np.tile(grad, (height, 1)) * k for k in (0.6, 0.8, 1.0)], axis=2)
    canvas = Image.fromarray(bg.astype(np.uint8))
    canvas.paste(face, ((width - height) // 2, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


@dataclass
class Row:
    name: str
    ms_per_face_b1: float
    faces_per_s_b8: float


VARIANTS = [
    ("naive: fp32, batch 1, whole image, contiguous", RuntimeOptions("fp32", False)),
    ("fp32 + channels_last", RuntimeOptions("fp32", True)),
    ("bf16 autocast, contiguous", RuntimeOptions("bf16", False)),
    ("bf16 + channels_last", RuntimeOptions("bf16", True)),
]


def bench_network(
    module: torch.nn.Module,
    config: ModelConfig,
    image: npt.NDArray[np.uint8],
    crops: npt.NDArray[np.uint8],
    repeats: int,
) -> list[Row]:
    """The network alone: the naive reference way against the project's variants, same weights.
    The naive way feeds the whole picture (resized); the others a face crop; same tensor size."""
    rows = []
    whole = full_frame(image, config)[None]
    batch8 = np.concatenate([crops] * (8 // len(crops) + 1))[:8]
    for i, (name, opts) in enumerate(VARIANTS):
        net = copy.deepcopy(module)  # a fresh copy per variant: each converts its own layout
        clf = Classifier(net, config, opts)
        single = whole if i == 0 else crops[:1]
        b1 = statistics.median(time_calls(functools.partial(clf.predict, single), repeats))
        b8_runs = time_calls(functools.partial(clf.predict, batch8), max(1, repeats // 4), 1)
        rows.append(Row(name, b1, 8 * 1000.0 / statistics.median(b8_runs)))
        del clf, net
        gc.collect()
    return rows


def precision_gap(
    module: torch.nn.Module, config: ModelConfig, crops: npt.NDArray[np.uint8]
) -> float:
    """Largest |P(fake) bf16+channels_last − P(fake) fp32| over the given face crops."""
    out = []
    for opts in (RuntimeOptions("fp32", False), RuntimeOptions("bf16", True)):
        clf = Classifier(copy.deepcopy(module), config, opts)
        out.append(
            np.concatenate([clf.predict(crops[i : i + 32]) for i in range(0, len(crops), 32)])
        )
    return float(np.max(np.abs(out[0] - out[1])))


def sample_face_crops(pipeline: Pipeline, n: int = 16) -> npt.NDArray[np.uint8]:
    """Distinct face crops from the public-domain sample: flips, scales, colour, JPEG quality."""
    base = Image.open(SAMPLE).convert("RGB")
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n * 2):
        img = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else base
        side = int(rng.integers(260, 900))
        img = img.resize((side, side), Image.Resampling.BICUBIC)
        arr = np.asarray(img).astype(np.float32) * rng.uniform(0.7, 1.2, size=3)
        buf = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
            buf, format="JPEG", quality=int(rng.integers(30, 95))
        )
        try:
            crops.append(pipeline.prepare(buf.getvalue()).inputs[0])
        except DetectorError:
            continue
        if len(crops) == n:
            break
    return np.stack(crops)


def manifest_face_crops(
    manifest: Path, config: ModelConfig, limit: int = 256
) -> npt.NDArray[np.uint8]:
    from detector.training.manifest import (
        RegionCache,
        default_cache_dir,
        load_inputs,
        read_manifest,
        usable,
    )

    samples = read_manifest(manifest)
    rng = np.random.default_rng(0)
    picked = [samples[i] for i in rng.permutation(len(samples))[: limit * 2]]
    regions = RegionCache(default_cache_dir(), config.crop_scale).regions(picked)
    pairs, _ = usable(picked, regions)
    return load_inputs(pairs[:limit], config.input_size, config.interpolation)


async def latencies(
    service: DetectorService, jpeg: bytes, repeats: int, warmup: int = 3
) -> list[float]:
    """Milliseconds per analysis, one at a time, after ``warmup`` (at most ``repeats``) calls."""
    for _ in range(min(warmup, repeats)):
        await service.analyze(jpeg)
    lat = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await service.analyze(jpeg)
        lat.append((time.perf_counter() - t0) * 1000.0)
    return lat


async def _one_member_figures(
    classifier: Classifier, jpeg: bytes, crops: npt.NDArray[np.uint8], repeats: int
) -> dict[str, float]:
    """An ensemble's first member served alone, same options: what the extra members cost."""
    module = classifier.module
    assert isinstance(module, LogitEnsemble)
    out: dict[str, float] = {}
    for name, clf in (
        ("member", Classifier(copy.deepcopy(module.members[0]),
                              classifier.config.replace(members=1), classifier.options)),
        ("ensemble", classifier),
    ):  # fmt: skip
        out[f"{name}_ms_b1"] = statistics.median(
            time_calls(functools.partial(clf.predict, crops[:1]), repeats)
        )
        async with DetectorService(build_pipeline(clf), ServiceOptions()) as service:
            out[f"{name}_p50"] = _pct(await latencies(service, jpeg, repeats), 50)
    return out


async def _service_figures(
    pipeline: Pipeline,
    jpeg: bytes,
    repeats: int,
    concurrent: int,
    soak: int,
    progress: Progress,
) -> dict[str, float]:
    out: dict[str, float] = {}
    async with DetectorService(pipeline, ServiceOptions(max_pending=concurrent * 2)) as service:
        lat = await latencies(service, jpeg, repeats)
        out["e2e_p50"] = _pct(lat, 50)
        out["e2e_p95"] = _pct(lat, 95)
        out["sequential_ips"] = 1000.0 / statistics.mean(lat)

        n = concurrent * max(2, repeats // 8)
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(concurrent)

        async def one() -> None:
            async with sem:
                await service.analyze(jpeg)

        await asyncio.gather(*(one() for _ in range(n)))
        out["concurrent_ips"] = n / (time.perf_counter() - t0)
        sizes = service.stats.batch_sizes
        out["mean_batch"] = sum(k * v for k, v in sizes.items()) / max(sum(sizes.values()), 1)

        gc.collect()
        out["rss_before_soak"] = _rss_mb()
        task = progress.add_task(f"soak: {soak} analyses", total=soak)
        done = 0
        step = max(1, soak // 4)
        while done < soak:
            chunk = min(concurrent, soak - done)
            await asyncio.gather(*(service.analyze(jpeg) for _ in range(chunk)))
            done += chunk
            progress.update(task, completed=done)
            if done % step < chunk or done == soak:
                gc.collect()
                out[f"rss_soak_{done}"] = _rss_mb()
        out["rss_after_soak"] = _rss_mb()
    return out


def run_bench(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    gc.collect()
    rss_start = _rss_mb()
    trained = True
    try:
        classifier = classifier_from_args(args)
    except CheckpointError as exc:
        if args.weights is not None:
            console.print(f"[bold red]error:[/] {exc}")
            return 2
        console.print(
            "[yellow]No weights installed: timing an untrained network (speed does not depend "
            "on weight values; the bf16 accuracy check is skipped).[/]"
        )
        classifier = Classifier(build_xception(2), ModelConfig(), runtime_options(args.precision))
        trained = False
    gc.collect()
    rss_loaded = _rss_mb()
    repeats = 2 if args.quick else 30
    soak = min(args.analyses, 64) if args.quick else args.analyses

    jpeg = scene_jpeg()
    pipeline = build_pipeline(classifier)
    prepared = pipeline.prepare(jpeg)
    module = classifier.module
    config = classifier.config
    sizes = sorted({config.input_size, 299})
    with Progress(console=console, transient=True) as progress:
        # Service and memory first, in a process that has built nothing else yet.
        figures = asyncio.run(_service_figures(pipeline, jpeg, repeats, 32, soak, progress))
        task = progress.add_task("network variants", total=None)
        networks = {}
        for size in sizes:
            cfg = config.replace(input_size=size)
            crops = np.stack([face_crop(prepared.rgb, b, cfg)[0] for b in prepared.boxes])
            networks[size] = bench_network(module, cfg, prepared.rgb, crops, repeats)
        gap = None
        gap_source = ""
        if trained:
            if args.manifest is not None:
                faces = manifest_face_crops(args.manifest, config)
                gap_source = f"{len(faces)} faces from {args.manifest.name}"
            else:
                faces = sample_face_crops(pipeline)
                gap_source = f"{len(faces)} variants of the sample face"
            gap = precision_gap(module, config, faces)
        progress.remove_task(task)
        members: dict[str, float] = {}
        if isinstance(module, LogitEnsemble):
            task = progress.add_task("ensemble against one member", total=None)
            crops = np.stack([face_crop(prepared.rgb, b, config)[0] for b in prepared.boxes])
            members = asyncio.run(_one_member_figures(classifier, jpeg, crops, repeats))
            progress.remove_task(task)

    report = render_report(
        networks,
        figures,
        rss_start,
        rss_loaded,
        classifier,
        trained,
        repeats,
        soak,
        args.quick,
        gap,
        gap_source,
        members,
    )
    emit_report(report, args.out, console)
    return 0


def emit_report(report: str, out: Path | None, console: Console) -> None:
    """The Markdown report on stdout (the command's output) and, with ``out``, in that file."""
    print(report)  # noqa: T201 - the report is the command's output
    if out is not None:
        out.write_text(report, encoding="utf-8")
        console.print(f"written to {out}")


def render_report(
    networks: dict[int, list[Row]],
    f: dict[str, float],
    rss_start: float,
    rss_loaded: float,
    classifier: Classifier,
    trained: bool,
    repeats: int,
    soak: int,
    quick: bool,
    gap: float | None,
    gap_source: str,
    members: dict[str, float] | None = None,
) -> str:
    cfg = classifier.config
    lines = [
        "## Benchmark",
        "",
        f"Machine: {machine_description()}.",
        f"Model: {cfg.name} ({'trained weights' if trained else 'untrained weights, speed only'}),"
        f" serving input {cfg.input_size}x{cfg.input_size}; precision "
        f"{classifier.options.precision}, channels_last={classifier.options.channels_last}.",
        f"Repetitions: {repeats} per latency figure (medians)"
        + (" — quick run: not for reporting." if quick else "."),
        "",
    ]
    for size, rows in networks.items():
        naive = rows[0]
        naive_fps = 1000.0 / naive.ms_per_face_b1
        lines += [
            f"### The network at {size}x{size}, per face",
            "",
            "| variant | batch 1: ms/face | vs naive | batch 8: faces/s | vs naive |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r.name} | {r.ms_per_face_b1:.1f} "
                f"| {naive.ms_per_face_b1 / r.ms_per_face_b1:.2f}x"
                f" | {r.faces_per_s_b8:.1f} | {r.faces_per_s_b8 / naive_fps:.2f}x |"
            )
        lines.append("")
    if gap is not None:
        lines += [
            f"bf16 + channels_last vs fp32: largest |ΔP(fake)| = {gap:.4f} over {gap_source}.",
            "",
        ]
    if cfg.bf16_max_dp is not None:
        lines += [
            f"Stamped into the weights at calibration: largest |ΔP(fake)| = {cfg.bf16_max_dp:.4f}"
            f" over the calibration faces (`auto` uses bf16 only up to {BF16_TOLERANCE}).",
            "",
        ]
    if members:
        n = cfg.members
        lines += [
            f"### Ensemble of {n} against its first member alone (same precision and layout)",
            "",
            "| figure | one member | ensemble | ensemble / member |",
            "|---|---:|---:|---:|",
            f"| network, batch 1 (ms/face) | {members['member_ms_b1']:.1f} | "
            f"{members['ensemble_ms_b1']:.1f} | "
            f"{members['ensemble_ms_b1'] / members['member_ms_b1']:.2f}x |",
            f"| end to end p50 (ms) | {members['member_p50']:.0f} | "
            f"{members['ensemble_p50']:.0f} | "
            f"{members['ensemble_p50'] / members['member_p50']:.2f}x |",
            "",
        ]
    soak_curve = ", ".join(
        f"{k.removeprefix('rss_soak_')}: {v:.0f} MB"
        for k, v in f.items()
        if k.startswith("rss_soak_")
    )
    lines += [
        "### End to end (service: decode → faces → crop → network), 1280x853 JPEG, one face",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| latency p50 | {f['e2e_p50']:.0f} ms |",
        f"| latency p95 | {f['e2e_p95']:.0f} ms |",
        f"| one request at a time | {f['sequential_ips']:.2f} images/s |",
        f"| 32 concurrent requests | {f['concurrent_ips']:.2f} images/s "
        f"({f['concurrent_ips'] / f['sequential_ips']:.2f}x; "
        f"mean batch {f['mean_batch']:.1f} crops) |",
        "",
        "### Memory (RSS)",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| after imports (torch, dlib, …) | {rss_start:.0f} MB |",
        f"| after loading the model | {rss_loaded:.0f} MB |",
        f"| warm (after the latency and concurrency runs) | {f['rss_before_soak']:.0f} MB |",
        f"| after {soak} more analyses (32 in flight) | {f['rss_after_soak']:.0f} MB "
        f"(growth {f['rss_after_soak'] - f['rss_before_soak']:+.0f} MB) |",
        "",
        f"RSS during the soak: {soak_curve}.",
        "",
    ]
    return "\n".join(lines)

"""``deepfake-bot bench-backends``: the local network against a remote one (an Open Inference
Protocol V2 server such as ``deepfake-bot serve``), side by side in one run, for the capacity
notes in the README.

Both score the same face crops (variants of the public-domain sample face) at batch 1, 8 and 32,
and serve the same 1280x853 one-face JPEG end to end through the service (decode, face finding
here; the network here or there). It also reports how far the remote P(fake) is from the local
one (the same weights must agree) and the bytes an infer request carries per face. Faces/s per
core divide by the cores each side was given: ``--threads`` here and ``--server-cores`` (what
the server was started with; the client cannot see it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rich.console import Console

from detector.commands import classifier_from_args
from detector.errors import CheckpointError, DetectorError
from detector.factory import available_cores, build_pipeline, build_remote_classifier
from detector.pipeline import Pipeline
from detector.remote import RemoteOptions
from detector.remote.wire import infer_request, to_wire
from detector.scorer import Scorer
from detector.service import DetectorService, ServiceOptions
from detector.tools.bench import (
    emit_report,
    latencies,
    machine_description,
    sample_face_crops,
    scene_jpeg,
    time_calls,
)

BATCHES = (1, 8, 32)


@dataclass
class Side:
    name: str
    cores: int | None
    faces_per_s: dict[int, float]
    e2e_p50_ms: float
    e2e_p95_ms: float
    images_per_s_32: float


def _faces_per_s(scorer: Scorer, crops: npt.NDArray[np.uint8], batch: int, repeats: int) -> float:
    inputs = np.concatenate([crops] * (batch // len(crops) + 1))[:batch]
    # One warm-up call: the first allocates, and the remote one opens its connection.
    times_ms = time_calls(lambda: scorer.predict(inputs), repeats, warmup=1)
    return batch * 1000.0 / statistics.median(times_ms)


async def _end_to_end(pipeline: Pipeline, jpeg: bytes, repeats: int) -> tuple[float, float, float]:
    async with DetectorService(pipeline, ServiceOptions(max_pending=64)) as service:
        lat = await latencies(service, jpeg, repeats, warmup=2)
        n = max(32, repeats)
        sem = asyncio.Semaphore(32)

        async def one() -> None:
            async with sem:
                await service.analyze(jpeg)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        ips = n / (time.perf_counter() - t0)
    q = statistics.quantiles(lat, n=20) if len(lat) > 1 else [lat[0]] * 19
    return statistics.median(lat), q[18], ips


def _measure(
    name: str, cores: int | None, pipeline: Pipeline, crops: npt.NDArray[np.uint8],
    jpeg: bytes, repeats: int,
) -> Side:  # fmt: skip
    scorer = pipeline.classifier
    fps = {b: _faces_per_s(scorer, crops, b, max(2, repeats // (1 + b // 8))) for b in BATCHES}
    p50, p95, ips = asyncio.run(_end_to_end(pipeline, jpeg, repeats))
    return Side(name, cores, fps, p50, p95, ips)


def payload_bytes(crops: npt.NDArray[np.uint8], n: int) -> dict[str, int]:
    faces = to_wire(np.concatenate([crops] * (n // len(crops) + 1))[:n])
    return {
        "binary": len(infer_request(faces, "bench", binary=True)[0]),
        "json": len(infer_request(faces, "bench", binary=False)[0]),
    }


def run_bench_backends(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        local = classifier_from_args(args)
        options = RemoteOptions(start_timeout_s=args.start_timeout)
        remote = build_remote_classifier(args.detector_url, args.detector_model, options)
    except (CheckpointError, DetectorError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    try:
        repeats = 3 if args.quick else args.repeats
        jpeg = scene_jpeg()
        local_pipe = build_pipeline(local)
        remote_pipe = Pipeline(remote, local_pipe.face_finder, local_pipe.limits)
        if remote.config.input_size != local.config.input_size:
            sizes_px = f"{remote.config.input_size} vs {local.config.input_size} px"
            console.print(f"[bold red]error:[/] the server's input size differs ({sizes_px})")
            return 2
        crops = sample_face_crops(local_pipe)
        gap = float(np.max(np.abs(local.predict(crops) - remote.predict(crops))))
        threads = args.threads or available_cores()
        console.print(f"timing local ({threads} thread(s)) and remote ({args.detector_url})")
        sides = [
            _measure("local", threads, local_pipe, crops, jpeg, repeats),
            _measure("remote (V2)", args.server_cores, remote_pipe, crops, jpeg, repeats),
        ]
        sizes = {n: payload_bytes(crops, n) for n in (1, 8)}
    finally:
        remote.close()
    report = render(sides, sizes, gap, local, args, repeats)
    emit_report(report, args.out, console)
    return 0


def render(
    sides: list[Side], sizes: dict[int, dict[str, int]], gap: float, local: Scorer,
    args: argparse.Namespace, repeats: int,
) -> str:  # fmt: skip
    loc, rem = sides
    lines = [
        "## Local vs remote detector (`deepfake-bot bench-backends`)",
        "",
        f"Machine: {machine_description()}. Weights: {local.config.name}, "
        f"{local.config.input_size} px; local precision "
        f"{getattr(getattr(local, 'options', None), 'precision', '?')}. Server: "
        f"`{args.detector_url}`, model `{args.detector_model}`, started with "
        f"{args.server_cores if args.server_cores else 'an unstated number of'} core(s). "
        f"{repeats} repeats per figure{' (quick: not for reporting)' if args.quick else ''}.",
        "",
        f"Same weights, same crops: largest |P(fake) remote − local| = **{gap:.2e}**.",
        "",
        "| figure | local | remote | remote / local |",
        "|---|---:|---:|---:|",
    ]
    for b in BATCHES:
        a, r = loc.faces_per_s[b], rem.faces_per_s[b]
        lines.append(f"| network faces/s, batch {b} | {a:.1f} | {r:.1f} | {r / a:.2f} |")
    for label, a, r in (
        ("end to end p50, 1280x853 JPEG, one face (ms)", loc.e2e_p50_ms, rem.e2e_p50_ms),
        ("end to end p95 (ms)", loc.e2e_p95_ms, rem.e2e_p95_ms),
        ("images/s, 32 concurrent", loc.images_per_s_32, rem.images_per_s_32),
    ):
        lines.append(f"| {label} | {a:.1f} | {r:.1f} | {r / a:.2f} |")
    if loc.cores and rem.cores:
        a = loc.faces_per_s[32] / loc.cores
        r = rem.faces_per_s[32] / rem.cores
        lines.append(f"| network faces/s per core, batch 32 | {a:.1f} | {r:.1f} | {r / a:.2f} |")
    lines += [
        "",
        "Bytes per infer request (what travels to the server):",
        "",
        "| faces | binary extension | JSON | JSON / binary |",
        "|---:|---:|---:|---:|",
    ]
    for n, s in sizes.items():
        lines.append(f"| {n} | {s['binary']:,} | {s['json']:,} | {s['json'] / s['binary']:.1f} |")
    return "\n".join(lines) + "\n"

"""The measuring commands: ``bench`` and ``bench-faces`` (BENCHMARKS.md). Only argparse at
import time; each body is imported when its command runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from detector.commands import add_model_args


def add_parsers(sub: Any) -> None:
    bench = sub.add_parser("bench", help="measure latency/throughput/memory (BENCHMARKS.md)")
    add_model_args(bench)
    bench.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    bench.add_argument(
        "--quick", action="store_true", help="few repetitions (a smoke run, not for reporting)"
    )
    bench.add_argument("--analyses", type=int, default=1000, help="analyses for the RSS soak")
    bench.add_argument("--manifest", type=Path, default=None, help="labelled faces for the "
                       "bf16-vs-fp32 probability check (default: variants of the sample face)")
    bench.set_defaults(handler=_bench)

    faces = sub.add_parser("bench-faces", help="compare the face finders on a generated check "
                           "set: recall, false detections, time (BENCHMARKS.md)")
    faces.add_argument("--set", type=Path, required=True, metavar="DIR",
                       help="the check set's folder (made there when --manifest is given)")
    faces.add_argument("--manifest", type=Path, default=None, help="labelled data to make the "
                       "set from (val rows; the pictures never go into the repository)")
    faces.add_argument("--sources", type=int, default=60, help="source pictures to draw")
    faces.add_argument("--finders", nargs="*", default=None, help="finders to compare "
                       "(default: all)")
    faces.add_argument("--repeats", type=int, default=20, help="runs per latency figure")
    faces.add_argument("--fit", action="store_true", help="also fit MTCNN's boxes onto dlib's")
    faces.add_argument("--e2e", action="store_true", help="also time the served finder end "
                       "to end with the shipped weights")
    faces.add_argument("--weights", type=Path, default=None)
    faces.add_argument("--threads", type=int, default=None)
    faces.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    faces.set_defaults(handler=_bench_faces)


def _bench(args: argparse.Namespace) -> int:
    from detector.tools.bench import run_bench

    return run_bench(args)


def _bench_faces(args: argparse.Namespace) -> int:
    from detector.tools.face_bench import run_bench_faces

    return run_bench_faces(args)

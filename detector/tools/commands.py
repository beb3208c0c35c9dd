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

    backends = sub.add_parser("bench-backends", help="the local network against a remote V2 "
                              "server (deepfake-bot serve), side by side (README capacity notes)")
    add_model_args(backends)
    backends.add_argument("--detector-url", required=True, metavar="URL",
                          help="the V2 server, e.g. http://127.0.0.1:8000")
    backends.add_argument("--detector-model", default="deepfake-xception", metavar="NAME")
    backends.add_argument("--server-cores", type=int, default=None, help="cores the server was "
                          "given (for faces/s per core; the client cannot see them)")
    backends.add_argument("--start-timeout", type=float, default=60.0, help="seconds to wait "
                          "for the server to be ready")
    backends.add_argument("--repeats", type=int, default=20, help="runs per latency figure")
    backends.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    backends.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    backends.set_defaults(handler=_bench_backends)

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


def _bench_backends(args: argparse.Namespace) -> int:
    from detector.tools.backend_bench import run_bench_backends

    return run_bench_backends(args)


def _bench_faces(args: argparse.Namespace) -> int:
    from detector.tools.face_bench import run_bench_faces

    return run_bench_faces(args)

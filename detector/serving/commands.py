"""``deepfake-bot serve``: the detector on Ray Serve, speaking the V2 protocol. Only argparse at
import time (``--help`` never loads Ray or torch); without the ``[serve]`` extra the command says
which extra to install."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from detector.serving.options import DEFAULT_MODEL_NAME, DEFAULT_PORT, ServeOptions

EXTRA_MODULES = ("ray", "fastapi")


def add_parsers(sub: Any) -> None:
    defaults = ServeOptions()
    p = sub.add_parser(
        "serve",
        help="serve the detector on Ray Serve over the Open Inference Protocol V2 "
        "(docs/remote-detector.md, docs/deploy-ray.md; needs the [serve] extra)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address of the V2 HTTP routes "
                   "(default 127.0.0.1; 0.0.0.0 to serve other machines)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the V2 HTTP routes")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint to serve (default: "
                   "the shipped weights, or $DEEPFAKE_BOT_WEIGHTS); must exist on every node")
    p.add_argument("--family", default=None, help="checkpoint family when not inferable")
    p.add_argument("--sha256", default=None, help="refuse the weights unless their sha256 matches")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="the V2 model name")
    p.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size,
                   help="faces per forward pass (crops of several requests together)")
    p.add_argument("--batch-wait-ms", type=float, default=defaults.batch_wait_s * 1000,
                   help="how long a batch waits for more faces")
    p.add_argument("--replicas", type=int, default=None,
                   help="a fixed number of scorer replicas (sets min and max)")
    p.add_argument("--min-replicas", type=int, default=defaults.min_replicas)
    p.add_argument("--max-replicas", type=int, default=None,
                   help="autoscale up to this many replicas (default: --min-replicas)")
    p.add_argument("--target-ongoing-requests", type=float,
                   default=defaults.target_ongoing_requests,
                   help="autoscaling target: requests in flight per replica")
    p.add_argument("--max-queued-requests", type=int, default=defaults.max_queued_requests,
                   help="requests waiting for a replica beyond this are answered 503 (busy)")
    p.add_argument("--num-cpus", type=float, default=defaults.num_cpus,
                   help="CPUs reserved per scorer replica (also its torch threads unless "
                   "--threads)")
    p.add_argument("--num-gpus", type=float, default=None,
                   help="GPUs per scorer replica (default: 1 when the cluster has a GPU, else 0)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads per replica")
    p.add_argument("--max-faces-per-request", type=int, default=defaults.max_faces_per_request)
    p.add_argument("--max-request-mb", type=float,
                   default=defaults.max_request_bytes / (1024 * 1024),
                   help="larger request bodies are refused (400)")
    p.add_argument("--address", default=None, metavar="RAY_ADDRESS",
                   help="join this Ray cluster (e.g. 10.0.0.5:6379 or 'auto') instead of "
                   "starting a local one")
    p.add_argument("--ray-temp-dir", type=Path, default=None,
                   help="a local Ray's session and log folder (default: a fresh folder in "
                   "/tmp, removed at exit)")
    p.set_defaults(handler=_serve)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """Raises ``ValueError`` for inconsistent values."""
    low = args.replicas if args.replicas is not None else args.min_replicas
    high = args.replicas if args.replicas is not None else (args.max_replicas or low)
    return ServeOptions(
        weights=args.weights,
        family=args.family,
        sha256=args.sha256,
        precision=args.precision,
        model_name=args.model_name,
        max_batch_size=args.max_batch_size,
        batch_wait_s=args.batch_wait_ms / 1000,
        min_replicas=low,
        max_replicas=high,
        target_ongoing_requests=args.target_ongoing_requests,
        max_queued_requests=args.max_queued_requests,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        threads=args.threads,
        max_faces_per_request=args.max_faces_per_request,
        max_request_bytes=int(args.max_request_mb * 1024 * 1024),
    )


def _serve(args: argparse.Namespace) -> int:
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        sys.stderr.write(f"deepfake-bot serve needs the serving extra (missing: "
                         f"{', '.join(missing)}): pip install 'deepfake-bot[serve]'\n")
        return 2
    from detector.serving.server import run_serve

    return run_serve(args)

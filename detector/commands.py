"""The engine's command: ``check``, and the model options every command that loads weights
shares. Only argparse at import time (``--help`` stays fast); each body is imported when its
command runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detector.model import Classifier
    from detector.scorer import Scorer


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="checkpoint to use (any supported family; default: the shipped weights, "
        "or $DEEPFAKE_BOT_WEIGHTS)",
    )
    p.add_argument(
        "--family",
        default=None,
        help="checkpoint family when it cannot be inferred "
        "(ffpp, ffpp-full, hongguliu, deepfakebench, ispl, deepfake-bot)",
    )
    p.add_argument("--sha256", default=None, help="refuse the weights unless their sha256 matches")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 on CPUs with native bf16 when the weights' measured bf16 gap "
        "(stamped by calibrate) is within 0.01 of fp32, else fp32",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def classifier_from_args(args: argparse.Namespace) -> Classifier:
    """The classifier :func:`add_model_args`' options describe (raises ``CheckpointError``)."""
    from detector.factory import build_classifier

    return build_classifier(
        args.weights,
        family=args.family,
        sha256=args.sha256,
        precision=args.precision,
        threads=args.threads,
    )


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """Where the network runs: here (the model options) or on a V2 inference server."""
    p.add_argument(
        "--backend",
        choices=["local", "remote"],
        default="local",
        help="local: load the weights here; remote: send the face crops to an Open Inference "
        "Protocol V2 server (docs/remote-detector.md), e.g. `deepfake-bot serve`",
    )
    p.add_argument("--detector-url", default=None, metavar="URL",
                   help="the V2 server for --backend remote, e.g. http://gpu-1:8000")  # fmt: skip
    p.add_argument("--detector-model", default="deepfake-xception", metavar="NAME",
                   help="the model's name on that server (default: deepfake-xception)")  # fmt: skip
    p.add_argument("--detector-timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for each remote answer (default: 30)")  # fmt: skip
    p.add_argument("--detector-start-timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the server and model to get ready (default: 60)")
    p.add_argument(
        "--detector-json",
        action="store_true",
        help="send crops as JSON numbers instead of the binary tensor extension",
    )


def scorer_from_args(args: argparse.Namespace) -> Scorer:
    """The network :func:`add_backend_args` and :func:`add_model_args` describe. Raises
    ``CheckpointError`` (``RemoteModelRefused`` included), ``DetectorUnavailable`` or
    ``ValueError`` (remote without a URL)."""
    if args.backend != "remote":
        return classifier_from_args(args)
    from detector.factory import build_remote_classifier
    from detector.remote import RemoteOptions

    if not args.detector_url:
        raise ValueError("--backend remote needs --detector-url URL (the V2 server)")
    options = RemoteOptions(
        timeout_s=args.detector_timeout,
        start_timeout_s=args.detector_start_timeout,
        binary=not args.detector_json,
    )
    return build_remote_classifier(args.detector_url, args.detector_model, options)


def add_parsers(sub: Any) -> None:
    """``sub``: the top parser's ``add_subparsers()`` object."""
    check = sub.add_parser("check", help="check image files or folders")
    check.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    check.add_argument("--json", action="store_true", help="one JSON object per input (JSON Lines)")
    check.add_argument("--annotate", type=Path, metavar="DIR", help="write annotated images here")
    check.add_argument("--max-faces", type=int, default=8, help="faces per image (largest first)")
    check.add_argument("--concurrency", type=int, default=8, help="images in flight at once")
    add_model_args(check)
    add_backend_args(check)
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from detector.check_files import run_check

    return run_check(args)

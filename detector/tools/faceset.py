"""A face-finding check set made from the labelled data: pictures with known face boxes.

``deepfake-bot bench-faces --make DIR`` writes it at run time (never into the repository: the
pictures derive from research data that must not be redistributed). From each drawn source it
makes the picture itself, a mirrored copy, a JPEG-compressed copy, one in-plane rotation
(±15/30/45°), the face downscaled to 40–80 px in a 1280x853 scene and the face at 100–300 px in
such a scene; then group pictures (2–5 faces pasted into one scene) and scenes with no face.

Known boxes: DFDC crops (``crop=face``) were cut around the face by construction, so they get
one box template measured on the crops where dlib HOG and MTCNN agree (that keeps every DFDC
head pose in the set). Whole pictures get the HOG box where HOG and MTCNN agree; pictures
where they do not agree are left out, so the set leans towards faces that two detector
families find upright: its hardness comes from the rotations, sizes, scenes and groups.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from detector.faces import Box, Finder
from detector.images import decode_image
from detector.training.manifest import Sample, read_manifest

SCENE = (1280, 853)
ANGLES = (15, 30, 45)


@dataclass(frozen=True)
class Picture:
    path: str  # relative to the set's folder
    category: str
    kind: str  # "dfdc" (every head pose) or "photo" (whole pictures)
    faces: list[list[int]]  # known boxes, x1 y1 x2 y2
    # Where source pixels are (background people in a photo can be unlabelled faces there);
    # detections elsewhere, on the made-up scene, are surely false.
    sources: list[list[int]]


def agrees(a: Box, b: Box) -> bool:
    """Same face: each box's centre lies inside the other, sides within 2x of each other.
    Loose on purpose: detectors draw boxes of different shapes around the same face."""

    def inside(p: Box, q: Box) -> bool:
        cx, cy = (p.x1 + p.x2) / 2, (p.y1 + p.y2) / 2
        return q.x1 <= cx <= q.x2 and q.y1 <= cy <= q.y2

    ratio = max(a.width, 1) / max(b.width, 1)
    return inside(a, b) and inside(b, a) and 0.5 <= ratio <= 2.0


def scene(rng: np.random.Generator, size: tuple[int, int] = SCENE) -> Image.Image:
    """A background without faces: smooth colour fields, shapes and sensor-like noise."""
    w, h = size
    coarse = rng.uniform(30, 225, size=(6, 9, 3)).astype(np.uint8)
    img = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 12))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        dx, dy = int(rng.integers(20, 300)), int(rng.integers(20, 300))
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + dx, y + dy), fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(img).astype(np.float32) + rng.normal(0, 6, size=(h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _scaled(box: Box, s: float, ox: int = 0, oy: int = 0) -> list[int]:
    return [round(box.x1 * s) + ox, round(box.y1 * s) + oy,
            round(box.x2 * s) + ox, round(box.y2 * s) + oy]  # fmt: skip


def rotated(img: Image.Image, box: Box, angle: float) -> tuple[Image.Image, list[int]]:
    """``img`` turned counter-clockwise by ``angle``; the known box keeps its size, centred on
    the rotated face centre."""
    fill = tuple(int(v) for v in np.asarray(img).reshape(-1, 3).mean(axis=0))
    out = img.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    a = np.radians(angle)
    dx = (box.x1 + box.x2) / 2 - img.width / 2
    dy = (box.y1 + box.y2) / 2 - img.height / 2
    cx = out.width / 2 + dx * np.cos(a) + dy * np.sin(a)
    cy = out.height / 2 - dx * np.sin(a) + dy * np.cos(a)
    hw, hh = box.width / 2, box.height / 2
    return out, [round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh)]


def _paste(
    canvas: Image.Image, img: Image.Image, box: Box, face_px: int, at: tuple[int, int]
) -> tuple[list[int], list[int]]:
    """Paste ``img`` scaled so its face is ``face_px`` wide; the face box and pasted area."""
    s = face_px / box.width
    small = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))),
                       Image.Resampling.LANCZOS)  # fmt: skip
    canvas.paste(small, at)
    return _scaled(box, s, *at), [at[0], at[1], at[0] + small.width, at[1] + small.height]


def _place(rng: np.random.Generator, img: Image.Image, face_px: int, box: Box) -> tuple[int, int]:
    s = face_px / box.width
    w, h = round(img.width * s), round(img.height * s)
    return int(rng.integers(0, max(1, SCENE[0] - w))), int(rng.integers(0, max(1, SCENE[1] - h)))


class SetMaker:
    def __init__(self, out: Path, hog: Finder, mtcnn: Finder, seed: int = 0) -> None:
        self.out = out
        self.hog = hog
        self.mtcnn = mtcnn
        self.rng = np.random.default_rng(seed)
        self.pictures: list[Picture] = []

    def save(self, img: Image.Image, category: str, kind: str, faces: list[list[int]],
             quality: int = 92, sources: list[list[int]] | None = None) -> None:  # fmt: skip
        name = f"{len(self.pictures):04d}-{category}.jpg"
        img.save(self.out / name, format="JPEG", quality=quality)
        whole = [[0, 0, img.width, img.height]]
        self.pictures.append(Picture(name, category, kind, faces, whole if sources is None
                                     else sources))  # fmt: skip

    def reference(self, rgb: npt.NDArray[np.uint8]) -> Box | None:
        """The HOG box of the largest face, where MTCNN finds the same face."""
        hog = self.hog.find(rgb)
        return hog[0] if hog and any(agrees(hog[0], m) for m in self.mtcnn.find(rgb)) else None

    def dfdc_template(self, crops: list[npt.NDArray[np.uint8]]) -> tuple[float, ...]:
        rows = []
        for rgb in crops:
            ref = self.reference(rgb)
            if ref is not None:
                h, w = rgb.shape[:2]
                rows.append((ref.x1 / w, ref.y1 / h, ref.x2 / w, ref.y2 / h))
        if len(rows) < 5:
            raise ValueError(f"only {len(rows)} DFDC crops with agreeing detectors")
        return tuple(float(v) for v in np.median(np.asarray(rows), axis=0))

    def variants(self, img: Image.Image, box: Box, kind: str, index: int) -> None:
        rng = self.rng
        self.save(img, "original", kind, [box.as_list()])
        w = img.width
        self.save(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "mirrored", kind,
                  [[w - box.x2, box.y1, w - box.x1, box.y2]])  # fmt: skip
        self.save(img, "jpeg", kind, [box.as_list()], quality=int(rng.integers(20, 40)))
        angle = ANGLES[index % 3] * (1 if (index // 3) % 2 == 0 else -1)
        turned, known = rotated(img, box, angle)
        self.save(turned, f"rot{abs(angle)}", kind, [known])
        for category, lo, hi in (("small", 40, 80), ("scene", 100, 300)):
            px = int(rng.integers(lo, hi + 1))
            canvas = scene(rng)
            known, area = _paste(canvas, img, box, px, _place(rng, img, px, box))
            self.save(canvas, category, kind, [known], sources=[area])

    def group(self, faces: list[tuple[Image.Image, Box]]) -> None:
        canvas = scene(self.rng)
        cols = len(faces)
        cell = SCENE[0] // cols
        known, areas = [], []
        for i, (img, box) in enumerate(faces):
            hi = max(61, min(200, int(cell * box.width / img.width)))
            px = int(self.rng.integers(60, hi + 1))
            s = px / box.width
            x = i * cell + int(self.rng.integers(0, max(1, cell - round(img.width * s))))
            y = int(self.rng.integers(0, max(1, SCENE[1] - round(img.height * s))))
            face, area = _paste(canvas, img, box, px, (x, y))
            known.append(face)
            areas.append(area)
        self.save(canvas, "group", "photo", known, sources=areas)

    def write_index(self) -> Path:
        path = self.out / "faceset.json"
        path.write_text(json.dumps([asdict(p) for p in self.pictures], indent=0) + "\n")
        return path


def _load(sample: Sample) -> Image.Image:
    return Image.fromarray(decode_image(sample.path.read_bytes()).rgb)


def make_set(
    manifest: Path,
    out: Path,
    hog: Finder,
    mtcnn: Finder,
    sources: int = 60,
    seed: int = 0,
    template_crops: int = 40,
) -> tuple[Path, dict[str, int]]:
    """Write the set into ``out`` (val rows only); returns the index file and counts of what
    was drawn and left out. The DFDC box template is measured on ``template_crops`` crops."""
    out.mkdir(parents=True, exist_ok=True)
    maker = SetMaker(out, hog, mtcnn, seed)
    rng = maker.rng
    val = read_manifest(manifest, split="val")
    dfdc = [s for s in val if s.crop == "face" and s.source == "dfdc"]
    photos = [s for s in val if s.crop != "face"]
    dfdc = [dfdc[i] for i in rng.permutation(len(dfdc))]
    photos = [photos[i] for i in rng.permutation(len(photos))]
    half = sources // 2
    crops = [np.asarray(_load(s)) for s in dfdc[: max(template_crops, half)]]
    x1, y1, x2, y2 = maker.dfdc_template(crops)
    counts = {"dfdc": 0, "photo": 0, "photo_left_out": 0}
    kept: list[tuple[Image.Image, Box]] = []
    for i, rgb in enumerate(crops[:half]):
        h, w = rgb.shape[:2]
        box = Box(round(x1 * w), round(y1 * h), round(x2 * w), round(y2 * h))
        maker.variants(Image.fromarray(rgb), box, "dfdc", i)
        kept.append((Image.fromarray(rgb), box))
        counts["dfdc"] += 1
    for sample in photos:
        if counts["photo"] >= sources - half:
            break
        img = _load(sample)
        ref = maker.reference(np.asarray(img))
        if ref is None:
            counts["photo_left_out"] += 1
            continue
        maker.variants(img, ref, "photo", counts["photo"])
        kept.append((img, ref))
        counts["photo"] += 1
    for _ in range(sources // 2):
        picks = rng.choice(len(kept), size=min(len(kept), int(rng.integers(2, 6))), replace=False)
        maker.group([kept[int(i)] for i in picks])
    for _ in range(sources // 2):
        maker.save(scene(rng), "none", "photo", [], sources=[])
    counts["pictures"] = len(maker.pictures)
    return maker.write_index(), counts


def load_set(index: Path) -> list[Picture]:
    raw = json.loads(index.read_text())
    return [Picture(**r) for r in raw]


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()

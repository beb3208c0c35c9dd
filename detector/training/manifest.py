"""Labelled image sets for training and evaluation: a manifest CSV in, face crops out.

Manifest format (header row required; paths relative to the CSV file)::

    path,label[,split,source,group,crop,...]

``label`` is ``real``/``fake`` (or ``0``/``1``); ``split`` is ``train``/``val``/``test``;
``source`` names where the image came from (metrics are reported per source); ``group`` keeps
related images on one side of a split; ``crop`` is ``face`` when the image already is a tight
face crop and ``full`` (or empty) when the face must be found first. Extra columns are kept.

Crops are made exactly as in serving (:mod:`detector.images` decode, :mod:`detector.faces`
detection, FF++ 1.3x box). Face boxes are cached on disk, so epochs after the first never run
the face detector again; pixels are re-read from the original bytes each time so augmentations
can re-compress the whole picture the way chat apps do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.errors import DetectorError
from detector.faces import Box, Finder
from detector.images import ImageLimits, decode_image

_log = logging.getLogger(__name__)

REAL, FAKE = 0, 1
_LABELS = {"real": REAL, "0": REAL, "fake": FAKE, "1": FAKE}


class ManifestError(ValueError):
    """The manifest file is malformed (the message says which line and why)."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    source: str = "default"
    split: str = ""
    group: str = ""
    crop: str = "full"
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def group_key(self) -> str:
        """What keeps related images together (the ``group`` column, else the file itself)."""
        return self.group or self.path.name

    @property
    def label_name(self) -> str:
        return "fake" if self.label == FAKE else "real"


def read_manifest(path: str | Path, split: str | None = None) -> list[Sample]:
    """Rows of a manifest CSV, optionally only one split. Raises ManifestError on bad rows."""
    path = Path(path)
    root = path.parent
    out: list[Sample] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        missing = {"path", "label"} - fields
        if missing:
            raise ManifestError(f"{path}: missing column(s) {sorted(missing)}")
        for lineno, row in enumerate(reader, start=2):
            label = _LABELS.get((row.get("label") or "").strip().lower())
            if label is None:
                raise ManifestError(f"{path}:{lineno}: label must be real/fake/0/1")
            rel = (row.get("path") or "").strip()
            if not rel:
                raise ManifestError(f"{path}:{lineno}: empty path")
            row_split = (row.get("split") or "").strip()
            if split is not None and row_split != split:
                continue
            crop = (row.get("crop") or "full").strip() or "full"
            if crop not in {"face", "full"}:
                raise ManifestError(f"{path}:{lineno}: crop must be 'face' or 'full'")
            known = {"path", "label", "split", "source", "group", "crop"}
            out.append(
                Sample(
                    path=root / rel,
                    label=label,
                    source=(row.get("source") or "default").strip() or "default",
                    split=row_split,
                    group=(row.get("group") or "").strip(),
                    crop=crop,
                    extra={k: v for k, v in row.items() if k not in known and k is not None},
                )
            )
    return out


@dataclass(frozen=True)
class FaceRegion:
    """Where the model input of one sample comes from. ``crop`` is ``None`` when the image has
    no detectable face (then ``fallback`` says whether the whole image is used instead)."""

    crop: Box | None
    width: int
    height: int
    found: bool
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "crop": self.crop.as_list() if self.crop else None,
            "width": self.width,
            "height": self.height,
            "found": self.found,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> FaceRegion:
        crop = raw.get("crop")
        box = Box(*[int(v) for v in crop]) if isinstance(crop, list) else None
        return cls(
            box,
            int(raw["width"]),  # type: ignore[call-overload]
            int(raw["height"]),  # type: ignore[call-overload]
            bool(raw["found"]),
            raw.get("error") if isinstance(raw.get("error"), str) else None,  # type: ignore[arg-type]
        )


def locate_face(
    data: bytes, crop_policy: str, finder: Finder, crop_scale: float, limits: ImageLimits
) -> FaceRegion:
    """The serving crop of the largest face. For pre-cropped images (``crop_policy == "face"``)
    with no detectable face, the whole image is the crop (it already is a face crop); for
    whole pictures with no face, there is no crop."""
    from detector.faces import crop_box

    try:
        image = decode_image(data, limits)
    except DetectorError as exc:
        return FaceRegion(None, 0, 0, False, f"{type(exc).__name__}: {exc}")
    boxes = finder.find(image.rgb)
    if boxes:
        return FaceRegion(
            crop_box(boxes[0], image.width, image.height, crop_scale),
            image.width,
            image.height,
            True,
        )
    if crop_policy == "face":
        return FaceRegion(Box(0, 0, image.width, image.height), image.width, image.height, False)
    return FaceRegion(None, image.width, image.height, False, "NoFaceFound: no face detected")


class RegionCache:
    """Face regions per image, on disk (JSON lines keyed by content hash + crop parameters +
    the face finder that drew the boxes), so each finder runs once per image and parameter
    set, across runs and sessions. ``finder`` names it (:mod:`detector.finders`; default: the
    served one, or ``$DEEPFAKE_BOT_FACE_FINDER``)."""

    VERSION = 1

    def __init__(
        self, directory: str | Path, crop_scale: float = 1.3, finder: str | None = None
    ) -> None:
        from detector.finders import configured_finder

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.crop_scale = crop_scale
        self.finder = finder or configured_finder()
        tag = hashlib.sha256(f"v{self.VERSION}:{crop_scale}".encode()).hexdigest()[:10]
        # HOG keeps the file name it had before finders were named, so its boxes stay valid.
        name = "" if self.finder == "hog" else f"{self.finder}-"
        self.file = self.directory / f"regions-{name}{tag}.jsonl"
        self._entries: dict[str, FaceRegion] = {}
        if self.file.exists():
            with self.file.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        raw = json.loads(line)
                        self._entries[raw["key"]] = FaceRegion.from_json(raw)
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line after a crash: recompute that entry

    @staticmethod
    def key(data: bytes, crop_policy: str) -> str:
        return hashlib.sha256(data).hexdigest() + ":" + crop_policy

    def get(self, key: str) -> FaceRegion | None:
        return self._entries.get(key)

    def regions(
        self,
        samples: Sequence[Sample],
        finder: Finder | None = None,
        limits: ImageLimits | None = None,
        workers: int = 2,
        progress: Callable[[int], object] | None = None,
    ) -> list[FaceRegion]:
        """Regions for ``samples`` in order, computing (and appending) the missing ones with
        the cache's finder (a ``finder`` given must be that one)."""
        from detector.finders import make_finder

        if finder is not None and finder.name != self.finder:
            raise ValueError(f"finder {finder.name!r} given to the {self.finder!r} box cache")
        finder = finder or make_finder(self.finder)
        limits = limits or ImageLimits()

        def one(sample: Sample) -> FaceRegion:
            try:
                data = sample.path.read_bytes()
            except OSError as exc:
                return FaceRegion(None, 0, 0, False, f"unreadable: {exc.strerror}")
            key = self.key(data, sample.crop)
            cached = self._entries.get(key)
            if cached is not None:
                return cached
            region = locate_face(data, sample.crop, finder, self.crop_scale, limits)
            self._entries[key] = region
            with self.file.open("a", encoding="utf-8") as fh:
                record = {"key": key, "finder": self.finder, **region.to_json()}
                fh.write(json.dumps(record) + "\n")
            return region

        out: list[FaceRegion] = []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for region in pool.map(one, samples):
                out.append(region)
                if progress is not None:
                    progress(1)
        return out


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepfake-bot"


def crop_pixels(rgb: npt.NDArray[np.uint8], region: Box) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(rgb[region.y1 : region.y2, region.x1 : region.x2])


def usable(
    samples: Iterable[Sample], regions: Iterable[FaceRegion]
) -> tuple[list[tuple[Sample, Box]], list[tuple[Sample, str]]]:
    """Split into (sample, crop) pairs and (sample, reason) for the ones without a face."""
    ok: list[tuple[Sample, Box]] = []
    skipped: list[tuple[Sample, str]] = []
    for s, r in zip(samples, regions, strict=True):
        if r.crop is not None:
            ok.append((s, r.crop))
        else:
            skipped.append((s, r.error or "no face"))
    return ok, skipped


def model_input(
    rgb: npt.NDArray[np.uint8], crop: Box, size: int, interpolation: str = "bilinear"
) -> npt.NDArray[np.uint8]:
    """The serving-path model input for one face: the crop region resized to ``size``."""
    from detector.preprocess import resize_square

    region = crop_pixels(rgb, crop)
    return resize_square(region, size, "bicubic" if interpolation == "bicubic" else "bilinear")


def load_inputs(
    pairs: Sequence[tuple[Sample, Box]],
    size: int,
    interpolation: str = "bilinear",
    limits: ImageLimits | None = None,
    transform: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] | None = None,
    progress: Callable[[int], object] | None = None,
    workers: int = 2,
) -> npt.NDArray[np.uint8]:
    """Model inputs for many samples, made exactly as in serving. ``transform`` (for robustness
    rows: JPEG q50, half resolution) changes the whole picture first; the crop box is scaled to
    the transformed picture's size."""
    limits = limits or ImageLimits()
    out = np.empty((len(pairs), size, size, 3), dtype=np.uint8)

    def one(i: int) -> None:
        sample, box = pairs[i]
        rgb = decode_image(sample.path.read_bytes(), limits).rgb
        if transform is not None:
            h, w = rgb.shape[:2]
            rgb = transform(rgb)
            sy, sx = rgb.shape[0] / h, rgb.shape[1] / w
            box = Box(
                round(box.x1 * sx), round(box.y1 * sy), round(box.x2 * sx), round(box.y2 * sy)
            )
        out[i] = model_input(rgb, box, size, interpolation)
        if progress is not None:
            progress(1)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(len(pairs))))
    return out

"""Synchronous pipeline: image bytes → :class:`~detector.results.Analysis`.

Split in two stages so the async service can batch the expensive one across requests:
``prepare`` (decode, find faces, crop; no torch) and ``score`` (the network, on many crops at
once). ``analyze`` runs both for one image.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detector.annotate import annotate_bytes
from detector.errors import DetectorError, FacesTooSmall, NoFaceFound
from detector.faces import Box, Finder
from detector.finders import make_finder
from detector.images import ImageLimits, decode_image
from detector.preprocess import face_crop, full_frame
from detector.results import MIN_JUDGE_PX, Analysis, FaceResult
from detector.scorer import Scorer

_log = logging.getLogger(__name__)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class Prepared:
    """An image made ready for the network: face boxes and one model-sized crop per face."""

    width: int
    height: int
    boxes: tuple[Box, ...]
    crops: tuple[Box, ...]
    inputs: npt.NDArray[np.uint8]  # [K, S, S, 3]
    rgb: npt.NDArray[np.uint8]  # the decoded image, kept for annotation
    timings_ms: dict[str, float] = field(default_factory=dict)
    too_small: tuple[Box, ...] = ()  # found, not scored


class Pipeline:
    """bytes → Analysis with one classifier (local :class:`~detector.model.Classifier` or
    :class:`~detector.remote.RemoteClassifier`), one face finder and the image limits. Faces
    narrower than ``min_face_px`` are reported as too small to judge instead of scored."""

    def __init__(
        self,
        classifier: Scorer,
        face_finder: Finder | None = None,
        limits: ImageLimits | None = None,
        min_face_px: int = MIN_JUDGE_PX,
    ) -> None:
        self.classifier = classifier
        self.face_finder = face_finder or make_finder()
        self.limits = limits or ImageLimits()
        self.min_face_px = min_face_px

    @property
    def model_name(self) -> str:
        return self.classifier.config.name

    def prepare(self, data: bytes) -> Prepared:
        config = self.classifier.config
        t0 = time.perf_counter()
        image = decode_image(data, self.limits)
        t_decode = _ms(t0)
        t1 = time.perf_counter()
        found = self.face_finder.find(image.rgb)
        t_faces = _ms(t1)
        if not found:
            raise NoFaceFound(f"no face in {image.width}x{image.height} {image.format} image")
        boxes = [b for b in found if b.width >= self.min_face_px]
        too_small = tuple(b for b in found if b.width < self.min_face_px)
        if not boxes:
            raise FacesTooSmall(len(too_small), self.min_face_px)
        t2 = time.perf_counter()
        if config.crop_mode == "full":
            # Full-frame models judge the whole picture once; the largest face stands for it.
            whole = Box(0, 0, image.width, image.height)
            boxes, crops = boxes[:1], [whole]
            inputs = full_frame(image.rgb, config)[None]
        else:
            made = [face_crop(image.rgb, box, config) for box in boxes]
            crops = [cb for _, cb in made]
            inputs = np.stack([arr for arr, _ in made])
        timings = {"decode": t_decode, "faces": t_faces, "crop": _ms(t2)}
        return Prepared(
            image.width, image.height, tuple(boxes), tuple(crops), inputs, image.rgb, timings,
            too_small,
        )

    def score(self, inputs: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        return self.classifier.predict(inputs)

    def finish(
        self,
        prepared: Prepared,
        p_fake: npt.NDArray[np.float64],
        timings_ms: dict[str, float],
        *,
        annotate: bool = False,
    ) -> Analysis:
        """Assemble the result; with ``annotate`` also render the annotated JPEG."""
        config = self.classifier.config
        faces = tuple(
            FaceResult(box, crop, float(p), config.band(float(p)))
            for box, crop, p in zip(prepared.boxes, prepared.crops, p_fake, strict=True)
        )
        analysis = Analysis(
            faces,
            prepared.width,
            prepared.height,
            config.name,
            timings_ms,
            too_small=prepared.too_small,
        )
        if annotate:
            t0 = time.perf_counter()
            jpeg = annotate_bytes(prepared.rgb, analysis)
            timings_ms["annotate"] = _ms(t0)
            analysis = dataclasses.replace(analysis, annotated_jpeg=jpeg)
        return analysis

    def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis:
        t0 = time.perf_counter()
        prepared = self.prepare(data)
        t1 = time.perf_counter()
        p = self.score(prepared.inputs)
        timings = {**prepared.timings_ms, "model": _ms(t1), "total": _ms(t0)}
        return self.finish(prepared, p, timings, annotate=annotate)

    def analyze_many(self, items: Sequence[bytes]) -> list[Analysis | DetectorError]:
        """Many images with one forward pass over all their faces. A bad image yields its
        error in its slot; the others are still analysed."""
        t0 = time.perf_counter()
        prepared: list[Prepared | DetectorError] = []
        for data in items:
            try:
                prepared.append(self.prepare(data))
            except DetectorError as exc:
                prepared.append(exc)
        ok = [p for p in prepared if isinstance(p, Prepared)]
        t1 = time.perf_counter()
        scores = self.score(np.concatenate([p.inputs for p in ok])) if ok else np.zeros(0)
        model_ms = _ms(t1)
        out: list[Analysis | DetectorError] = []
        offset = 0
        for p in prepared:
            if isinstance(p, DetectorError):
                out.append(p)
                continue
            k = len(p.inputs)
            timings = {**p.timings_ms, "model": model_ms, "total": _ms(t0)}
            out.append(self.finish(p, scores[offset : offset + k], timings))
            offset += k
        return out

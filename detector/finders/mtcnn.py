"""MTCNN (Zhang et al. 2016) from ``facenet-pytorch``, whose wheel ships the P/R/O-net weights.

The package pins an old torch, so it is installed with ``--no-deps`` (``scripts/setup``); its
real runtime needs (torch, torchvision, requests, numpy, pillow) are project dependencies.
MTCNN's boxes are taller than dlib's and sit lower on the face; :data:`MTCNN_TO_DLIB` maps them
onto dlib's geometry so the FF++ crop stays the one the classifier was trained on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from detector.errors import FinderUnavailable
from detector.faces import Box
from detector.finders.common import BoxMap, clipped, downscaled, largest_first

# Least-squares fit over 178 faces that dlib's HOG and MTCNN both found on the check set
# (bench-faces --fit; residuals in BENCHMARKS.md "Box mapping").
MTCNN_TO_DLIB = BoxMap(dx=0.0048, dy=0.0483, side=0.9300)


@dataclass(frozen=True)
class MtcnnOptions:
    # 800 px keeps faces of ~32 px (at 1280 px) findable: MTCNN's smallest window is
    # ``min_face_size`` on the downscaled copy.
    max_side: int = 800
    min_face_size: int = 20
    # P/R/O-net stage thresholds (facenet-pytorch's defaults), then the final probability a
    # face must reach to be reported (raised to keep false detections rare).
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    min_prob: float = 0.95
    max_faces: int = 8
    min_face_px: int = 16
    box_map: BoxMap = MTCNN_TO_DLIB


def _load(options: MtcnnOptions) -> Any:
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:
        raise FinderUnavailable(f"facenet-pytorch is not usable: {exc}") from exc
    return MTCNN(
        keep_all=True,
        min_face_size=options.min_face_size,
        thresholds=list(options.thresholds),
        post_process=False,
        device="cpu",
    )


class MtcnnFinder:
    """MTCNN faces mapped to dlib geometry. One network per thread: facenet-pytorch's detector
    keeps no state between calls, but per-thread copies (2 MB) make that not matter."""

    def __init__(self, options: MtcnnOptions | None = None) -> None:
        self.options = options or MtcnnOptions()
        self._local = threading.local()
        self._local.net = _load(self.options)  # fail at construction, not on the first image

    @property
    def name(self) -> str:
        return "mtcnn"

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            net = _load(self.options)
            self._local.net = net
        return net

    def raw(self, rgb: npt.NDArray[np.uint8]) -> list[Box]:
        """MTCNN's own boxes (original pixels, unmapped), for fitting the map."""
        return self._detect(rgb, BoxMap())

    def find(self, rgb: npt.NDArray[np.uint8]) -> list[Box]:
        return self._detect(rgb, self.options.box_map)

    def _detect(self, rgb: npt.NDArray[np.uint8], box_map: BoxMap) -> list[Box]:
        height, width = rgb.shape[:2]
        small, scale = downscaled(np.ascontiguousarray(rgb), self.options.max_side)
        if min(small.shape[:2]) < self.options.min_face_size:
            # No window fits (facenet-pytorch would fail on an empty scale pyramid): a strip
            # or a tiny picture holds no face MTCNN can find.
            return []
        with torch.inference_mode():
            found, probs = self._net().detect(small)
        if found is None:
            return []
        boxes = []
        for (x1, y1, x2, y2), p in zip(found, probs, strict=True):
            if p is None or p < self.options.min_prob:
                continue
            mapped = box_map.apply(x1 / scale, y1 / scale, x2 / scale, y2 / scale)
            boxes.append(clipped(*mapped, width, height, float(p)))
        return largest_first(boxes, self.options.max_faces, self.options.min_face_px)

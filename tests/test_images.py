"""Tests of ``detector.images``: a hostile image set, generated here (nothing binary committed)."""

from __future__ import annotations

import io
import resource
import struct
import time
import tracemalloc
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from detector import images
from detector.errors import (
    CorruptImage,
    EmptyImage,
    ImageError,
    ImageTooLarge,
    ImageTooSmall,
    UnsupportedImage,
)
from detector.images import DecodedImage, ImageLimits, decode_image, sniff_format

try:
    import pillow_heif
except ImportError:  # pragma: no cover - depends on the environment
    pillow_heif = None

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_HYPOTHESIS = False
else:
    HAVE_HYPOTHESIS = True

HAVE_HEIF = "HEIF" in images.supported_formats()
HAVE_AVIF = "AVIF" in images.supported_formats()


# --- helpers ----------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def heic_bytes(im: Image.Image, **params: Any) -> bytes:
    """Encode HEIC with pillow-heif (skips the test when it cannot)."""
    if pillow_heif is None or not HAVE_HEIF:
        pytest.skip("pillow-heif is not importable here")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif build has no HEVC encoder")
    buf = io.BytesIO()
    pillow_heif.from_pillow(im).save(buf, format="HEIF", **params)
    return buf.getvalue()


def quadrants(width: int = 64, height: int = 32) -> np.ndarray:
    """An asymmetric RGB test picture: four flat colours, so every flip/rotation differs."""
    a = np.zeros((height, width, 3), dtype=np.uint8)
    h2, w2 = height // 2, width // 2
    a[:h2, :w2] = (220, 30, 30)
    a[:h2, w2:] = (30, 200, 30)
    a[h2:, :w2] = (30, 30, 220)
    a[h2:, w2:] = (230, 230, 40)
    return a


def noisy(width: int = 48, height: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_with_header(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose IHDR declares ``width x height`` (RGB, 8-bit) with a correct CRC."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64) if idat is None else idat
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def gif_with_header(width: int, height: int) -> bytes:
    """A GIF whose logical screen and first frame declare ``width x height``."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0, 0, 0)
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x44\x01\x00;"
    )


def bmp_with_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + info + b"\0" * 16


def tiff_with_header(width: int, height: int, pixels: bytes = b"") -> bytes:
    """A minimal uncompressed 8-bit grayscale TIFF (little-endian) declaring ``width x height``."""
    count = 9
    data_offset = 8 + 2 + count * 12 + 4

    def short(tag: int, value: int) -> bytes:
        return struct.pack("<HHIHH", tag, 3, 1, value, 0)

    def long(tag: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, 4, 1, value)

    entries = [
        long(256, width),
        long(257, height),
        short(258, 8),
        short(259, 1),
        short(262, 1),
        long(273, data_offset),
        short(277, 1),
        long(278, height),
        long(279, len(pixels) or width * height),
    ]
    assert len(entries) == count
    ifd = struct.pack("<H", count) + b"".join(entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + pixels


def webp_vp8x_header(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def jpeg_with_header(width: int, height: int) -> bytes:
    """A real baseline JPEG whose SOF0 marker is patched to declare ``width x height``."""
    data = bytearray(encode(Image.new("RGB", (32, 32), "gray"), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def psd_bytes(width: int = 24, height: int = 20) -> bytes:
    """A minimal raw RGB Photoshop file (Pillow reads it; we must not)."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    return header + struct.pack(">IIIH", 0, 0, 0, 0) + bytes(width * height * 3)


FORBIDDEN_IN_USER_MESSAGE = ("PIL", "Pillow", "Traceback", "/", "\\", "BytesIO", "0x", "Error")


def check_user_message(err: ImageError) -> None:
    message = err.user_message
    assert isinstance(message, str) and message.strip()
    for bad in FORBIDDEN_IN_USER_MESSAGE:
        assert bad not in message, (bad, message)
    assert str(err)  # operator detail (or the user message) is never empty


def expect_error(
    data: bytes, error: type[ImageError], limits: ImageLimits | None = None
) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_image(data, limits or ImageLimits())
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    check_user_message(info.value)
    return info.value


def check_decoded(result: DecodedImage) -> None:
    rgb = result.rgb
    assert rgb.dtype == np.uint8
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.flags.c_contiguous
    assert not rgb.flags.writeable
    assert (result.height, result.width) == rgb.shape[:2]
    assert result.frames >= 1
    assert result.format in images.supported_formats()


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# --- valid images -----------------------------------------------------------------------------


def test_supported_formats_cover_the_basics() -> None:
    formats = images.supported_formats()
    for name in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"):
        assert name in formats
    assert images.supported_formats() is formats  # computed once


LOSSLESS: list[tuple[str, dict[str, Any]]] = [
    ("PNG", {}),
    ("BMP", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_deflate"}),
    ("WEBP", {"lossless": True}),
]


@pytest.mark.parametrize(("fmt", "params"), LOSSLESS, ids=lambda v: str(v))
def test_lossless_round_trip(fmt: str, params: dict[str, Any]) -> None:
    pixels = noisy()
    result = decode_image(encode(Image.fromarray(pixels), fmt, **params))
    check_decoded(result)
    assert result.format == fmt
    assert result.frames == 1
    np.testing.assert_array_equal(result.rgb, pixels)


def test_gif_round_trip_is_exact_for_a_palette_image() -> None:
    pixels = quadrants()
    result = decode_image(encode(Image.fromarray(pixels), "GIF"))
    check_decoded(result)
    assert result.format == "GIF"
    np.testing.assert_array_equal(result.rgb, pixels)


def test_jpeg_round_trip() -> None:
    pixels = quadrants()
    result = decode_image(encode(Image.fromarray(pixels), "JPEG", quality=95, subsampling=0))
    check_decoded(result)
    assert (result.format, result.width, result.height) == ("JPEG", 64, 32)
    assert max_diff(result.rgb, pixels) <= 12


def test_heic_round_trip() -> None:
    pixels = quadrants()
    data = heic_bytes(Image.fromarray(pixels), quality=95)
    assert sniff_format(data) == "HEIF"
    result = decode_image(data)
    check_decoded(result)
    assert (result.format, result.width, result.height) == ("HEIF", 64, 32)
    assert max_diff(result.rgb[2:-2, 2:-2], pixels[2:-2, 2:-2]) <= 40
    assert np.abs(result.rgb.astype(int) - pixels.astype(int)).mean() < 6


@pytest.mark.skipif(not HAVE_AVIF, reason="this Pillow has no AVIF support")
def test_avif_round_trip() -> None:
    pixels = quadrants()
    data = encode(Image.fromarray(pixels), "AVIF", quality=95)
    assert sniff_format(data) == "AVIF"
    result = decode_image(data)
    check_decoded(result)
    assert (result.format, result.width, result.height) == ("AVIF", 64, 32)
    assert np.abs(result.rgb.astype(int) - pixels.astype(int)).mean() < 6


def test_mpo_is_reported_as_jpeg_with_one_frame() -> None:
    first, second = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (40, 30), "blue")
    data = encode(first, "MPO", save_all=True, append_images=[second])
    result = decode_image(data)
    assert (result.format, result.frames) == ("JPEG", 1)
    assert max_diff(result.rgb, np.full((30, 40, 3), (255, 0, 0), np.uint8)) <= 4


ANIMATED: list[tuple[str, dict[str, Any]]] = [
    ("GIF", {"duration": 100, "loop": 0}),
    ("PNG", {"duration": 100}),  # APNG
    ("WEBP", {"duration": 100, "lossless": True}),
    ("TIFF", {}),  # multi-page
]


@pytest.mark.parametrize(("fmt", "params"), ANIMATED, ids=[f for f, _ in ANIMATED])
def test_animation_and_multipage_give_the_first_frame(fmt: str, params: dict[str, Any]) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (40, 30), c) for c in colours]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **params)
    result = decode_image(data)
    check_decoded(result)
    assert result.format == fmt
    assert result.frames == 3
    np.testing.assert_array_equal(result.rgb, np.full((30, 40, 3), colours[0], np.uint8))


def test_mislabelled_file_decodes_by_content() -> None:
    # A PNG sent as "photo.jpg" with MIME image/jpeg: the API only ever sees the bytes.
    data = encode(Image.fromarray(quadrants()), "PNG")
    assert sniff_format(data) == "PNG"
    result = decode_image(data)
    assert result.format == "PNG"
    np.testing.assert_array_equal(result.rgb, quadrants())


# --- EXIF orientation -------------------------------------------------------------------------

# What a viewer must do to the stored pixels for each EXIF orientation (spec, not Pillow).
ORIENTED: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror horizontally
    3: lambda a: a[::-1, ::-1],  # rotate 180
    4: lambda a: a[::-1, :],  # mirror vertically
    5: lambda a: a.transpose(1, 0, 2),  # transpose (mirror + rotate 270 CW)
    6: lambda a: np.rot90(a, k=-1),  # rotate 90 CW
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transverse (mirror + rotate 90 CW)
    8: lambda a: np.rot90(a, k=1),  # rotate 90 CCW
}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", sorted(ORIENTED))
def test_exif_orientation(fmt: str, orientation: int) -> None:
    stored = quadrants(64, 32)
    exif = Image.Exif()
    exif[0x0112] = orientation
    params: dict[str, Any] = {"exif": exif.tobytes()}
    if fmt == "JPEG":
        params |= {"quality": 95, "subsampling": 0}
    result = decode_image(encode(Image.fromarray(stored), fmt, **params))
    check_decoded(result)
    expected = ORIENTED[orientation](stored)
    assert result.rgb.shape == expected.shape
    assert (result.width, result.height) == (expected.shape[1], expected.shape[0])
    if fmt == "PNG":
        np.testing.assert_array_equal(result.rgb, expected)
    else:
        assert max_diff(result.rgb, expected) <= 12


def test_broken_exif_does_not_cost_the_picture() -> None:
    jpeg = encode(Image.fromarray(quadrants()), "JPEG", quality=95, subsampling=0)
    app1 = b"Exif\0\0II*\0\xff\xff\xff\x7f" + bytes(range(40))
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the corrupt EXIF block
        result = decode_image(data)
    assert result.rgb.shape == (32, 64, 3)


# --- pixel modes ------------------------------------------------------------------------------


def test_cmyk_jpeg() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    assert b"Adobe" in data  # libjpeg marks CMYK as Adobe (inverted) CMYK
    result = decode_image(data)
    assert max_diff(result.rgb, np.full((32, 32, 3), (255, 0, 0), np.uint8)) <= 6


def test_16_bit_grayscale_png_is_scaled_not_clipped() -> None:
    row = np.array([0, 257, 1000, 32768, 65280, 65535], dtype=np.uint16)
    data = encode(Image.fromarray(np.tile(row, (16, 3))), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    result = decode_image(data)
    np.testing.assert_array_equal(result.rgb[0, :6, 0], [0, 1, 4, 128, 254, 255])
    assert (result.rgb[..., 0] == result.rgb[..., 1]).all()
    assert (result.rgb[..., 0] == result.rgb[..., 2]).all()


def test_16_bit_big_endian_tiff() -> None:
    row = np.array([0, 257, 32768, 65535], dtype=">u2")
    data = encode(Image.fromarray(np.tile(row, (16, 4))), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I;16B"
    np.testing.assert_array_equal(decode_image(data).rgb[0, :4, 1], [0, 1, 128, 255])


def test_32_bit_integer_tiff_is_scaled_by_its_depth() -> None:
    row = np.array([0, 1 << 15, 1 << 30, (1 << 31) - 1, -5], dtype=np.int32)
    data = encode(Image.fromarray(np.tile(row, (16, 4))), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    np.testing.assert_array_equal(decode_image(data).rgb[0, :5, 0], [0, 0, 128, 255, 0])


def test_float_tiff() -> None:
    row = np.array([0.0, 100.4, 254.6, 300.0, -3.0, np.nan, np.inf], dtype=np.float32)
    data = encode(Image.fromarray(np.tile(row, (16, 3))), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    # 0..255 intensities, clipped; NaN -> 0, +inf -> 255
    np.testing.assert_array_equal(decode_image(data).rgb[0, :7, 0], [0, 100, 255, 255, 0, 0, 255])


def test_normalised_float_tiff_is_stretched() -> None:
    row = np.array([0.0, 0.25, 0.5, 1.0, np.nan], dtype=np.float32)
    data = encode(Image.fromarray(np.tile(row, (16, 4))), "TIFF")
    np.testing.assert_array_equal(decode_image(data).rgb[0, :5, 2], [0, 64, 128, 255, 0])


def test_rgba_png_is_composited_over_white() -> None:
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:, :4] = (200, 10, 10, 255)  # opaque
    rgba[:, 4:8] = (0, 0, 0, 0)  # fully transparent black
    rgba[:, 8:12] = (0, 0, 0, 128)  # half transparent black
    rgba[:, 12:] = (10, 20, 30, 0)  # fully transparent colour
    result = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(result.rgb[0, 0]) == (200, 10, 10)
    assert tuple(result.rgb[0, 5]) == (255, 255, 255)
    assert all(abs(int(v) - 127) <= 1 for v in result.rgb[0, 9])
    assert tuple(result.rgb[0, 13]) == (255, 255, 255)


def test_opaque_rgba_is_unchanged() -> None:
    rgba = np.dstack([noisy(32, 16), np.full((16, 32), 255, np.uint8)])
    result = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(result.rgb, rgba[..., :3])


def test_palette_png_with_transparency_over_white() -> None:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 0, 200, 0])
    im.paste(1, (10, 0, 20, 20))
    data = encode(im, "PNG", transparency=0)
    result = decode_image(data)
    assert tuple(result.rgb[0, 0]) == (255, 255, 255)  # transparent black -> white, not black
    assert tuple(result.rgb[0, 15]) == (0, 200, 0)


def test_palette_png_without_transparency() -> None:
    im = Image.new("P", (20, 20), 1)
    im.putpalette([0, 0, 0, 10, 20, 30])
    assert tuple(decode_image(encode(im, "PNG")).rgb[3, 3]) == (10, 20, 30)


def test_gif_transparency_over_white() -> None:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 250, 0, 0])
    im.paste(1, (0, 0, 10, 20))
    result = decode_image(encode(im, "GIF", transparency=0))
    assert tuple(result.rgb[0, 0]) == (250, 0, 0)
    assert tuple(result.rgb[0, 15]) == (255, 255, 255)


def test_rgb_png_with_colour_key_transparency() -> None:
    a = np.zeros((16, 16, 3), np.uint8)
    a[:, 8:] = (10, 20, 30)
    result = decode_image(encode(Image.fromarray(a), "PNG", transparency=(10, 20, 30)))
    assert tuple(result.rgb[0, 0]) == (0, 0, 0)
    assert tuple(result.rgb[0, 12]) == (255, 255, 255)


def test_la_png() -> None:
    la = Image.new("LA", (16, 16), (0, 128))
    la.paste((90, 255), (0, 0, 8, 16))
    result = decode_image(encode(la, "PNG"))
    assert tuple(result.rgb[0, 0]) == (90, 90, 90)
    assert all(abs(int(v) - 127) <= 1 for v in result.rgb[0, 12])


def test_bilevel_png() -> None:
    im = Image.new("1", (16, 16), 0)
    im.paste(1, (0, 0, 8, 16))
    result = decode_image(encode(im, "PNG"))
    assert tuple(result.rgb[0, 0]) == (255, 255, 255)
    assert tuple(result.rgb[0, 12]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("mode", "fill", "expected"),
    [
        ("RGBa", (100, 50, 0, 255), (100, 50, 0)),
        ("RGBa", (0, 0, 0, 0), (255, 255, 255)),
        ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
        ("HSV", (0, 255, 255), (255, 0, 0)),
        ("YCbCr", (76, 85, 255), (254, 0, 0)),
        ("LAB", (255, 128, 128), (255, 255, 255)),
        ("CMYK", (255, 0, 255, 0), (0, 255, 0)),
        ("PA", (0, 0), (255, 255, 255)),
        ("I;16B", 65535, (255, 255, 255)),
        ("I;16L", 32768, (128, 128, 128)),
        ("I", 65535, (255, 255, 255)),  # no container metadata: 16-bit since it fits
        ("F", 0.5, (128, 128, 128)),
    ],
)
def test_mode_conversion(mode: str, fill: Any, expected: tuple[int, int, int]) -> None:
    rgb = images._to_rgb(Image.new(mode, (4, 3), fill))
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert all(abs(int(v) - e) <= 1 for v, e in zip(rgb[1, 1], expected, strict=True))


def test_yuv_and_lab_tiffs() -> None:
    lab = decode_image(encode(Image.new("LAB", (16, 16), (255, 128, 128)), "TIFF"))
    assert max_diff(lab.rgb, np.full((16, 16, 3), 255, np.uint8)) <= 2
    ycc = decode_image(encode(Image.new("YCbCr", (16, 16), (76, 85, 255)), "TIFF"))
    assert max_diff(ycc.rgb, np.full((16, 16, 3), (254, 0, 0), np.uint8)) <= 2


# --- damaged images ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
@pytest.mark.parametrize("keep", [0.3, 0.8])
def test_truncated_images_are_corrupt(fmt: str, keep: float) -> None:
    data = encode(Image.fromarray(noisy(64, 64)), fmt)
    expect_error(data[: int(len(data) * keep)], CorruptImage)


def test_truncated_heic_is_corrupt() -> None:
    data = heic_bytes(Image.fromarray(noisy(64, 64)))
    expect_error(data[: len(data) * 2 // 3], CorruptImage)


def test_png_with_short_idat_is_corrupt() -> None:
    raw = b"".join(b"\0" + bytes(range(96)) for _ in range(32))
    compressed = zlib.compress(raw)
    good = png_with_header(32, 32, compressed)
    assert decode_image(good).rgb.shape == (32, 32, 3)
    expect_error(png_with_header(32, 32, compressed[: len(compressed) // 2]), CorruptImage)


def test_png_with_garbage_idat_is_corrupt() -> None:
    garbage = b"\x78\x9c" + np.random.default_rng(1).bytes(200)
    expect_error(png_with_header(32, 32, garbage), CorruptImage)


def test_png_with_broken_crc_is_corrupt() -> None:
    data = bytearray(png_with_header(32, 32))
    data[29] ^= 0xFF  # IHDR CRC
    expect_error(bytes(data), CorruptImage)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff" + b"\0" * 40, b"\x89PNG\r\n\x1a\n", b"GIF89a\x01", b"BM" + b"\x01" * 60],
    ids=["jpeg-magic", "png-signature", "gif-magic", "bmp-magic"],
)
def test_magic_without_an_image_is_corrupt(data: bytes) -> None:
    expect_error(data, CorruptImage)


@pytest.mark.parametrize("chunk", [b"zTXt", b"iTXt", b"iCCP"])
@pytest.mark.parametrize("where", ["before-IDAT", "after-IDAT"])
def test_png_compressed_chunk_bomb(chunk: bytes, where: str) -> None:
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MiB of zeros in ~64 KiB
    prefix = {b"zTXt": b"k\0\0", b"iTXt": b"k\0\1\0\0\0", b"iCCP": b"k\0\0"}[chunk]
    good = encode(Image.new("RGB", (32, 32), "red"), "PNG")
    at = good.index(b"IDAT" if where == "before-IDAT" else b"IEND") - 4
    data = good[:at] + png_chunk(chunk, prefix + bomb) + good[at:]
    tracemalloc.start()
    try:
        try:
            result = decode_image(data)
        except ImageError as err:
            assert isinstance(err, CorruptImage)
            check_user_message(err)
        else:  # decoding safely (ignoring the chunk) is acceptable too
            assert result.rgb.shape == (32, 32, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak


# --- formats we do not allow ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: psd_bytes(),
        lambda: encode(Image.new("RGB", (32, 32), "red"), "ICO"),
        lambda: encode(Image.new("RGB", (32, 32), "red"), "TGA"),
        lambda: encode(Image.new("RGB", (32, 32), "red"), "PPM"),
        lambda: encode(Image.new("RGB", (32, 32), "red"), "PCX"),
        lambda: encode(Image.new("RGB", (32, 32), "red"), "EPS"),
        lambda: encode(Image.new("RGB", (32, 32), "red"), "QOI"),
        lambda: encode(Image.new("RGB", (32, 32), "red"), "DDS"),
    ],
    ids=["PSD", "ICO", "TGA", "PPM", "PCX", "EPS", "QOI", "DDS"],
)
def test_formats_pillow_knows_but_we_do_not_allow(make: Callable[[], bytes]) -> None:
    data = make()
    Image.open(io.BytesIO(data)).close()  # Pillow, unrestricted, would open these
    assert sniff_format(data) is None
    expect_error(data, UnsupportedImage)


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(7).bytes(4096),
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 4,
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="640" '
        b'height="480"><rect width="10" height="10"/></svg>',
        b"<html><body><img src=x></body></html>",
        b"\0" * 100,
        b"x",
    ],
    ids=["random", "pdf", "svg", "html", "zeros", "one-byte"],
)
def test_non_images_are_unsupported(data: bytes) -> None:
    assert sniff_format(data) is None
    expect_error(data, UnsupportedImage)


# --- limits -----------------------------------------------------------------------------------


def test_empty() -> None:
    expect_error(b"", EmptyImage)


def test_too_many_bytes() -> None:
    data = encode(Image.fromarray(noisy(64, 64)), "PNG")
    err = expect_error(data, ImageTooLarge, ImageLimits(max_bytes=len(data) - 1))
    assert str(len(data)) in str(err) and str(len(data) - 1) in str(err)
    assert decode_image(data, ImageLimits(max_bytes=len(data))).rgb.shape == (64, 64, 3)


def _rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def test_png_header_claiming_100000_squared_is_rejected_without_allocating() -> None:
    data = png_with_header(100_000, 100_000)
    assert len(data) < 100
    rss_before = _rss_kib()
    tracemalloc.start()
    try:
        started = time.perf_counter()
        err = expect_error(data, ImageTooLarge)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "10000000000" in str(err)  # 100000 * 100000 pixels
    assert elapsed < 1.0
    assert peak < 1024 * 1024
    assert _rss_kib() - rss_before < 100 * 1024  # a decode would need 30 GB


@pytest.mark.parametrize(
    "data",
    [
        gif_with_header(65535, 65535),
        bmp_with_header(100_000, 100_000),
        bmp_with_header(100_000, -100_000),  # top-down BMP
        tiff_with_header(50_000, 50_000),
        jpeg_with_header(65_000, 65_000),
        webp_vp8x_header(16_384, 16_384),
        png_with_header(7_000, 7_000),  # under Pillow's bomb limit, over ours
        gif_with_header(7_000, 7_000),
    ],
    ids=["gif", "bmp", "bmp-top-down", "tiff", "jpeg", "webp", "png-49MP", "gif-49MP"],
)
def test_huge_headers_are_rejected_fast(data: bytes) -> None:
    started = time.perf_counter()
    expect_error(data, ImageTooLarge)
    assert time.perf_counter() - started < 1.0


def test_limit_details_name_the_numbers() -> None:
    err = expect_error(png_with_header(7_000, 7_000), ImageTooLarge)
    assert "7000x7000" in str(err) and "49000000" in str(err) and "40000000" in str(err)
    err = expect_error(webp_vp8x_header(16_384, 16_384), ImageTooLarge)
    assert "16384x16384" in str(err)


def test_crafted_tiff_helper_makes_a_valid_tiff() -> None:
    data = tiff_with_header(16, 16, bytes(range(256)))
    result = decode_image(data)
    np.testing.assert_array_equal(result.rgb[0, :16, 0], np.arange(16))


def test_side_limits() -> None:
    err = expect_error(png_with_header(13_000, 20), ImageTooLarge)
    assert "13000" in str(err) and "12000" in str(err)
    small = encode(Image.new("RGB", (40, 40)), "PNG")
    err = expect_error(small, ImageTooLarge, ImageLimits(max_pixels=1000))
    assert "1600" in str(err) and "1000" in str(err)
    expect_error(small, ImageTooLarge, ImageLimits(max_side=39))
    expect_error(small, ImageTooSmall, ImageLimits(min_side=41))
    assert decode_image(small, ImageLimits(max_pixels=1600, max_side=40, min_side=40))


def test_tiny_image_is_too_small() -> None:
    expect_error(encode(Image.new("RGB", (8, 300)), "PNG"), ImageTooSmall)


def test_pillow_bomb_warning_becomes_an_error_and_is_not_printed() -> None:
    pillow_max = Image.MAX_IMAGE_PIXELS
    if pillow_max is None:
        pytest.skip("Pillow's bomb check is disabled in this process")
    height = int(pillow_max) // 10_000 + 1  # over Pillow's warning threshold, under its error
    data = gif_with_header(10_000, height)
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expect_error(data, ImageTooLarge)
        # even when the caller allows more pixels than Pillow does
        expect_error(data, ImageTooLarge, ImageLimits(max_pixels=10**12, max_side=65_535))
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert list(warnings.filters) == filters_before


def test_pillow_globals_are_untouched() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    data = encode(Image.fromarray(noisy(64, 64)), "JPEG")
    expect_error(data[: len(data) // 2], CorruptImage)
    expect_error(png_with_header(100_000, 100_000), ImageTooLarge)
    decode_image(data)
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


# --- sniffing, threads, fuzzing ---------------------------------------------------------------


def test_sniff_format() -> None:
    im = Image.fromarray(quadrants())
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"):
        assert sniff_format(encode(im, fmt)) == fmt
    assert sniff_format(encode(im, "TIFF")[:4]) == "TIFF"
    assert sniff_format(b"") is None
    assert sniff_format(b"GIF90a") is None
    if HAVE_AVIF:
        assert sniff_format(encode(im, "AVIF")) == "AVIF"


def test_concurrent_decoding() -> None:
    pillow_max = Image.MAX_IMAGE_PIXELS or 89_478_485
    jpeg = encode(Image.fromarray(quadrants()), "JPEG", quality=95, subsampling=0)
    png = encode(Image.fromarray(noisy()), "PNG")
    cases: list[tuple[bytes, type[ImageError] | None]] = [
        (jpeg, None),
        (png, None),
        (jpeg[: len(jpeg) // 2], CorruptImage),
        (gif_with_header(10_000, int(pillow_max) // 10_000 + 1), ImageTooLarge),
        (png_with_header(100_000, 100_000), ImageTooLarge),
        (b"%PDF-1.4", UnsupportedImage),
    ] * 12
    filters_before = list(warnings.filters)

    def run(case: tuple[bytes, type[ImageError] | None]) -> str:
        data, error = case
        try:
            result = decode_image(data)
        except ImageError as err:
            return "ok" if type(err) is error else f"wrong {type(err).__name__}"
        check_decoded(result)
        return "ok" if error is None else "decoded"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(run, cases))
    assert outcomes == ["ok"] * len(cases)
    assert list(warnings.filters) == filters_before


def _mutations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        mutated = bytearray(data)
        kind = int(rng.integers(0, 3))
        if kind == 0:  # flip a few bytes, mostly in the header
            for _ in range(int(rng.integers(1, 9))):
                span = 200 if rng.random() < 0.7 else len(mutated)
                mutated[int(rng.integers(0, min(span, len(mutated))))] = int(rng.integers(256))
        elif kind == 1:  # truncate
            mutated = mutated[: int(rng.integers(1, len(mutated)))]
        else:  # insert junk
            at = int(rng.integers(0, len(mutated)))
            mutated[at:at] = rng.bytes(int(rng.integers(1, 64)))
        out.append(bytes(mutated))
    return out


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_mutated_images_only_raise_image_errors(fmt: str) -> None:
    rng = np.random.default_rng(12345)
    base = encode(Image.fromarray(noisy(40, 32)), fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about some damaged metadata
        for data in _mutations(base, rng, 150):
            try:
                result = decode_image(data)
            except ImageError as err:
                check_user_message(err)
            else:
                check_decoded(result)


if HAVE_HYPOTHESIS:
    _MAGICS = [
        b"",
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"RIFF\0\0\0\0WEBPVP8X",
        b"BM",
        b"II*\x00",
        b"MM\x00*",
        b"\0\0\0\x18ftypheic",
        b"\0\0\0\x1cftypavif",
    ]

    @settings(max_examples=300, deadline=None)
    @given(prefix=st.sampled_from(_MAGICS), body=st.binary(max_size=512))
    def test_random_bytes_only_raise_image_errors(prefix: bytes, body: bytes) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = decode_image(prefix + body)
            except ImageError as err:
                check_user_message(err)
            else:
                check_decoded(result)

else:

    @pytest.mark.skip(reason="hypothesis is not installed in this environment")
    def test_random_bytes_only_raise_image_errors() -> None:
        """Property test; the seeded mutation test above covers the same ground without it."""

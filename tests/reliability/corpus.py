"""The hostile-input corpus (issue 16), generated here from seeds: no binary blob is committed.

Every :class:`Case` has a class (``truncated``, ``bitflip``, ``wrong_ext``, ``empty``,
``non_image``, ``polyglot``, ``pixel_bomb``, ``animated``, ``modes``, ``metadata``,
``orientation``, ``extreme_size``), a file name with an image suffix (what a chat would deliver
it as), its bytes, and what the decoder may make of it: ``expect`` names the outcomes allowed
(``"decoded"`` or the name of a typed ``ImageError``). Hostile classes allow any typed error;
the classes that hold valid pictures must decode.

``build()`` is deterministic and takes a few seconds; ``write(folder)`` lays the corpus out as
files for the ``check`` command and the measuring script.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"

ANY_ERROR = ("CorruptImage", "UnsupportedImage", "ImageTooLarge", "ImageTooSmall", "EmptyImage")
ANYTHING = ("decoded", *ANY_ERROR)
SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif",
          "BMP": ".bmp", "HEIF": ".heic"}  # fmt: skip


@dataclass(frozen=True)
class Case:
    cls: str
    name: str  # unique, ends with an image suffix
    data: bytes
    expect: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.data)


# --- encoders -----------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(im).save(buf, format="HEIF", quality=60, **params)
    else:
        im.save(buf, fmt, **params)
    return buf.getvalue()


def heif_encoder_available() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    return bool(pillow_heif.libheif_info().get("HEIF"))


@functools.cache
def face_picture(side: int = 256) -> Image.Image:
    """The public-domain astronaut (a real face), downsized: valid inputs that reach a verdict."""
    return Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((side, side))


def noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + crc


def png_declaring(width: int, height: int, idat: bytes | None = None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 4096) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body)
            + png_chunk(b"IEND", b""))  # fmt: skip


def gif_declaring(width: int, height: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b"\x2c"
            + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00;")  # fmt: skip


def bmp_declaring(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + info + b"\0" * 16


def tiff_declaring(width: int, height: int) -> bytes:
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8 + 2 + 9 * 12 + 4), (277, 3, 1), (278, 4, height),
               (279, 4, width * height)]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        ifd += struct.pack("<HHII", tag, kind, 1, value) if kind == 4 else struct.pack(
            "<HHIHH", tag, kind, 1, value, 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 256


def webp_declaring(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (32, 32), "gray"), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def heif_declaring(width: int, height: int) -> bytes:
    """A real small HEIC whose ``ispe`` (image spatial extents) boxes claim ``width x height``."""
    data = bytearray(encode(noise(64, 64, 3), "HEIF"))
    at = data.find(b"ispe")
    while at != -1:
        data[at + 8 : at + 16] = struct.pack(">II", width, height)
        at = data.find(b"ispe", at + 4)
    return bytes(data)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buf.getvalue()


def jpeg_with_segment(marker: int, payloads: list[bytes]) -> bytes:
    """A small JPEG with APPn segments (``marker``: 0xE1 EXIF, 0xE2 ICC) inserted after SOI."""
    base = encode(face_picture(320), "JPEG", quality=80)
    segs = b"".join(bytes([0xFF, marker]) + struct.pack(">H", len(p) + 2) + p for p in payloads)
    return base[:2] + segs + base[2:]


# --- the classes --------------------------------------------------------------------------------


def _formats() -> list[str]:
    out = ["JPEG", "PNG", "WEBP", "GIF", "TIFF"]
    if heif_encoder_available():
        out.append("HEIF")
    return out


def _truncated() -> list[Case]:
    cases = []
    for fmt in _formats():
        data = encode(noise(96, 80, 1), fmt)
        for i, keep in enumerate((0.02, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97, 0.995)):
            cut = max(1, min(len(data) - 1, int(len(data) * keep)))
            cases.append(Case("truncated", f"trunc_{fmt}_{i}{SUFFIX[fmt]}", data[:cut],
                              ANY_ERROR))  # fmt: skip
    return cases


def _bitflipped() -> list[Case]:
    cases = []
    rng = np.random.default_rng(16)
    for fmt in _formats():
        data = encode(face_picture(96), fmt)
        for i in range(16):
            mutated = bytearray(data)
            span = min(len(mutated), 256) if i % 2 == 0 else len(mutated)  # header, anywhere
            for _ in range(int(rng.integers(1, 12))):
                mutated[int(rng.integers(0, span))] ^= 1 << int(rng.integers(0, 8))
            cases.append(Case("bitflip", f"flip_{fmt}_{i}{SUFFIX[fmt]}", bytes(mutated),
                              ANYTHING))  # fmt: skip
    return cases


def _wrong_extensions() -> list[Case]:
    cases = []
    picture = face_picture(320)
    fmts = [*_formats(), "BMP"]
    for fmt in fmts:
        data = encode(picture, fmt)
        others = [f for f in fmts if f != fmt]
        for other in others[:3]:
            cases.append(Case("wrong_ext", f"{fmt}_named{SUFFIX[other]}", data, ("decoded",)))
        cases.append(Case("wrong_ext", f"{fmt}_named.jpeg", data, ("decoded",)))
    return cases


def _empty() -> list[Case]:
    blobs = {
        "zero_bytes": b"", "one_byte": b"\xff", "nul_100": b"\0" * 100, "ff_4096": b"\xff" * 4096,
        "space": b" ", "newline": b"\n", "nul_1mib": b"\0" * (1 << 20), "soi_only": b"\xff\xd8",
    }  # fmt: skip
    return [Case("empty", f"{name}.jpg", data, ("EmptyImage",) if not data else
                 ("UnsupportedImage", "CorruptImage")) for name, data in blobs.items()]  # fmt: skip


def _non_images() -> list[Case]:
    png = encode(Image.new("RGB", (32, 32), "red"), "PNG")
    blobs = {
        "html": b"<!doctype html><html><body><script>alert(1)</script></body></html>",
        "html_bom": b"\xef\xbb\xbf<html><img src=x onerror=alert(1)></html>",
        "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="30000" '
               b'height="30000"><rect width="10" height="10"/></svg>',
        "svg_xxe": b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                   b'<svg xmlns="http://www.w3.org/2000/svg">&x;</svg>',
        "pdf": b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n%%EOF\n",
        "zip": zip_bytes({"a.txt": b"hello" * 100}),
        "zip_of_png": zip_bytes({"photo.png": png}),
        "zip_slip": zip_bytes({"../../../../tmp/evil.png": png}),
        "gzip": b"\x1f\x8b\x08\x00" + zlib.compress(b"x" * 1000),
        "elf": b"\x7fELF\x02\x01\x01" + b"\0" * 120,
        "pe": b"MZ" + b"\0" * 58 + b"\x40\0\0\0PE\0\0" + b"\0" * 64,
        "shell": b"#!/bin/sh\nrm -rf /\n",
        "json": b'{"image": "data:image/png;base64,AAAA"}',
        "data_uri": b"data:image/png;base64," + __import__("base64").b64encode(png),
        "mp4": b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom" + b"\0" * 64,
        "riff_wav": b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 40,
        "psd": b"8BPS\0\x01" + b"\0" * 60,
        "ico": encode(Image.new("RGB", (32, 32), "red"), "ICO"),
        "tga": encode(Image.new("RGB", (32, 32), "red"), "TGA"),
        "ppm": encode(Image.new("RGB", (32, 32), "red"), "PPM"),
        "random_4k": np.random.default_rng(4).bytes(4096),
        "utf16_text": "not an image".encode("utf-16"),
    }
    return [Case("non_image", f"{name}.png", data, ("UnsupportedImage", "CorruptImage"))
            for name, data in blobs.items()]  # fmt: skip


def _polyglots() -> list[Case]:
    jpeg = encode(face_picture(128), "JPEG")
    png = encode(face_picture(128), "PNG")
    gif = encode(face_picture(128).convert("P"), "GIF")
    html = b"<html><script>alert(document.cookie)</script></html>"
    blobs = {
        # an image first, something else after: decodes as the image, or is refused
        "jpeg_then_zip": jpeg + zip_bytes({"x.js": b"alert(1)"}),
        "jpeg_then_html": jpeg + html,
        "png_then_zip": png + zip_bytes({"x.js": b"alert(1)"}),
        "png_then_pdf": png + b"%PDF-1.4\n%%EOF",
        "gif_then_js": gif + b"*/=1;alert(1);/*",
        "jpeg_comment_html": jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(html) + 2) + html
        + jpeg[2:],
        # something else first, an image later: never the image
        "html_then_jpeg": html + jpeg,
        "pdf_then_png": b"%PDF-1.4\n" + png,
        "zip_then_png": zip_bytes({"x": b"y"}) + png,
        "svg_with_png": b'<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;'
        b'base64,' + __import__("base64").b64encode(png) + b'"/></svg>',
        # a GIF header over JavaScript (the GIFAR/GIF-JS trick)
        "gif_js": b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=alert(1);",
        "png_sig_html": b"\x89PNG\r\n\x1a\n" + html,
        "jpeg_soi_pdf": b"\xff\xd8\xff\xe0%PDF-1.4",
        "riff_webp_zip": b"RIFF\x40\0\0\0WEBPVP8 " + zip_bytes({"a": b"b"}),
        "tiff_html": b"II*\x00" + html,
        "bm_html": b"BM" + html,
    }
    out = []
    for name, data in blobs.items():
        image_first = name.split("_then_")[0] in {"jpeg", "png", "gif"} and "_then_" in name
        expect = ANYTHING if image_first or name == "jpeg_comment_html" else ANY_ERROR
        out.append(Case("polyglot", f"{name}.jpg", data, expect))
    return out


def _pixel_bombs() -> list[Case]:
    makers = {
        "PNG": png_declaring, "GIF": gif_declaring, "BMP": bmp_declaring,
        "TIFF": tiff_declaring, "WEBP": webp_declaring, "JPEG": jpeg_declaring,
    }  # fmt: skip
    if heif_encoder_available():
        makers["HEIF"] = heif_declaring
    sizes = [(30_000, 30_000), (65_000, 65_000), (100_000, 1)]
    cases = []
    for fmt, make in makers.items():
        for w, h in sizes:
            if fmt in {"GIF", "JPEG"} and max(w, h) > 65_535:
                w, h = 65_535, 65_535 // 2
            if fmt == "WEBP":  # 24-bit fields in VP8X; libwebp's canvas limit is 16383
                w, h = {30_000: (16_384, 16_384), 65_000: (16_384, 8_000)}.get(w, (16_384, 1))
            data = make(w, h)
            ok = ("ImageTooLarge",) if w * h > 40_000_000 or max(w, h) > 12_000 else ANY_ERROR
            cases.append(Case("pixel_bomb", f"bomb_{fmt}_{w}x{h}{SUFFIX[fmt]}", data,
                              ok + (("CorruptImage",) if fmt == "HEIF" else ())))  # fmt: skip
    # A real deflate stream of 30000 x 30000 zero rows (~2.7 GB decoded) in about 2.6 MB.
    raw = zlib.compressobj(9)
    row = b"\0" * (30_000 * 3 + 1)
    stream = b"".join(raw.compress(row) for _ in range(2_000)) + raw.flush()
    cases.append(Case("pixel_bomb", "bomb_PNG_deflate_30000x30000.png",
                      png_declaring(30_000, 30_000, stream), ("ImageTooLarge",)))  # fmt: skip
    # PNG text/profile chunks that inflate to 64 MiB.
    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    good = encode(Image.new("RGB", (32, 32), "red"), "PNG")
    at = good.index(b"IDAT") - 4
    for kind, prefix in ((b"zTXt", b"k\0\0"), (b"iCCP", b"k\0\0")):
        data = good[:at] + png_chunk(kind, prefix + bomb) + good[at:]
        cases.append(Case("pixel_bomb", f"bomb_PNG_{kind.decode()}.png", data, ANYTHING))
    return cases


def _animated() -> list[Case]:
    cases = []
    for count in (1_000, 3_000, 5_000):
        frames = [Image.new("P", (16, 16), i % 256) for i in range(count)]
        data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
        cases.append(Case("animated", f"anim_{count}.gif", data, ("decoded",)))
    for count in (1_000, 2_500):
        frames = [Image.new("RGB", (16, 16), (i % 256, 0, 0)) for i in range(count)]
        data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=10,
                      lossless=True)  # fmt: skip
        cases.append(Case("animated", f"anim_{count}.webp", data, ("decoded",)))
    big = [face_picture(128)] + [noise(128, 128, i) for i in range(200)]
    cases.append(Case("animated", "anim_faces_201.gif",
                      encode(big[0], "GIF", save_all=True, append_images=big[1:]),
                      ("decoded",)))  # fmt: skip
    pages = [face_picture(64)] * 500
    cases.append(Case("animated", "pages_500.tif",
                      encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]),
                      ("decoded",)))  # fmt: skip
    return cases


def _modes() -> list[Case]:
    face = face_picture(320)
    gray16 = Image.fromarray(np.asarray(face.convert("L"), dtype=np.uint16) * 257)
    out: dict[str, tuple[bytes, str]] = {
        "png_16bit_gray": (encode(gray16, "PNG"), "png"),
        "tiff_16bit_gray": (encode(gray16, "TIFF"), "tif"),
        "tiff_32bit_int": (encode(face.convert("I"), "TIFF"), "tif"),
        "tiff_float": (encode(face.convert("F"), "TIFF"), "tif"),
        "jpeg_cmyk": (encode(face.convert("CMYK"), "JPEG"), "jpg"),
        "tiff_cmyk": (encode(face.convert("CMYK"), "TIFF"), "tif"),
        "png_palette": (encode(face.convert("P"), "PNG"), "png"),
        "gif_palette": (encode(face.convert("P"), "GIF"), "gif"),
        "bmp_palette": (encode(face.convert("P"), "BMP"), "bmp"),
        "png_rgba": (encode(face.convert("RGBA"), "PNG"), "png"),
        "png_la": (encode(face.convert("LA"), "PNG"), "png"),
        "webp_rgba": (encode(face.convert("RGBA"), "WEBP"), "webp"),
        "tiff_rgba": (encode(face.convert("RGBA"), "TIFF"), "tif"),
        "png_1bit": (encode(face.convert("1"), "PNG"), "png"),
        "tiff_1bit": (encode(face.convert("1"), "TIFF"), "tif"),
        "bmp_1bit": (encode(face.convert("1"), "BMP"), "bmp"),
        "jpeg_gray": (encode(face.convert("L"), "JPEG"), "jpg"),
        "tiff_ycbcr": (encode(face.convert("YCbCr"), "TIFF"), "tif"),
        "tiff_lab": (encode(face.convert("LAB"), "TIFF"), "tif"),
        "jpeg_progressive": (encode(face, "JPEG", progressive=True), "jpg"),
    }
    alpha = face.convert("RGBA")
    alpha.putalpha(0)
    out["png_fully_transparent"] = (encode(alpha, "PNG"), "png")
    pal = face.convert("P")
    out["png_palette_trns"] = (encode(pal, "PNG", transparency=0), "png")
    out["tiff_lzw"] = (encode(face, "TIFF", compression="tiff_lzw"), "tif")
    out["tiff_deflate"] = (encode(face, "TIFF", compression="tiff_adobe_deflate"), "tif")
    return [Case("modes", f"{name}.{ext}", data, ("decoded",)) for name, (data, ext) in
            out.items()]  # fmt: skip


def _metadata() -> list[Case]:
    face = face_picture(320)
    rng = np.random.default_rng(5)
    exif_max = b"Exif\0\0" + b"II*\x00\x08\x00\x00\x00" + rng.bytes(65_000)
    icc_chunk = rng.bytes(65_000)
    icc_segments = [b"ICC_PROFILE\0" + bytes([i + 1, 16]) + icc_chunk for i in range(16)]
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription
    exif[0x0112] = 6
    cases = {
        "jpeg_exif_64k_garbage.jpg": jpeg_with_segment(0xE1, [exif_max]),
        "jpeg_exif_many_segments.jpg": jpeg_with_segment(0xE1, [exif_max] * 40),
        "jpeg_icc_1mib_garbage.jpg": jpeg_with_segment(0xE2, icc_segments),
        "jpeg_exif_60k_description.jpg": encode(face, "JPEG", exif=exif.tobytes()),
        "png_exif_4mib.png": encode(face, "PNG", exif=b"II*\x00\x08\x00\x00\x00"
                                    + rng.bytes(4 << 20)),
        "png_icc_512k.png": encode(face, "PNG", icc_profile=rng.bytes(512 << 10)),
        "webp_exif_4mib.webp": encode(face, "WEBP", exif=b"Exif\0\0" + rng.bytes(4 << 20)),
        "webp_icc_4mib.webp": encode(face, "WEBP", icc_profile=rng.bytes(4 << 20)),
        "tiff_exif_tags.tif": encode(face, "TIFF", exif=exif.tobytes()),
        "jpeg_com_64k.jpg": jpeg_with_segment(0xFE, [b"A" * 65_000] * 8),
    }
    out = [Case("metadata", name, data, ("decoded",)) for name, data in cases.items()]
    # Pillow refuses a PNG profile that inflates past 1 MiB (ImageFile.SAFEBLOCK): a typed
    # refusal of the whole picture, not a crash.
    big_icc = encode(face, "PNG", icc_profile=rng.bytes(4 << 20))
    out.append(Case("metadata", "png_icc_4mib.png", big_icc, ("decoded", "CorruptImage")))
    return out


def _orientations() -> list[Case]:
    cases = []
    face = face_picture(400).crop((0, 0, 400, 320))
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        for orientation in range(1, 9):
            exif = Image.Exif()
            exif[0x0112] = orientation
            data = encode(face, fmt, exif=exif.tobytes())
            cases.append(Case("orientation", f"orient{orientation}_{fmt}{SUFFIX[fmt]}", data,
                              ("decoded",)))  # fmt: skip
    for bad in (0, 9, 255, 65535):
        exif = Image.Exif()
        exif[0x0112] = bad
        cases.append(Case("orientation", f"orient_bad{bad}.jpg",
                          encode(face, "JPEG", exif=exif.tobytes()), ("decoded",)))  # fmt: skip
    return cases


def _extreme_sizes() -> list[Case]:
    cases = []
    for fmt in ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"):
        one = encode(Image.new("RGB", (1, 1), "white"), fmt)
        cases.append(Case("extreme_size", f"1x1_{fmt}{SUFFIX[fmt]}", one, ("ImageTooSmall",)))
    for w, h in ((12_000, 1), (1, 12_000), (12_000, 16), (16, 12_000), (12_001, 16)):
        for fmt in ("PNG", "JPEG"):
            if fmt == "JPEG" and max(w, h) > 12_000:
                continue
            data = encode(Image.new("RGB", (w, h), (120, 80, 40)), fmt)
            expect = ("ImageTooSmall",) if min(w, h) < 16 else ("decoded",)
            if max(w, h) > 12_000:
                expect = ("ImageTooLarge",)
            cases.append(Case("extreme_size", f"{w}x{h}_{fmt}{SUFFIX[fmt]}", data, expect))
    cases.append(Case("extreme_size", "16x16.png", encode(Image.new("RGB", (16, 16)), "PNG"),
                      ("decoded",)))  # fmt: skip
    cases.append(Case("extreme_size", "6000x6000.jpg",
                      encode(noise(600, 600, 9).resize((6000, 6000)), "JPEG", quality=50),
                      ("decoded",)))  # fmt: skip
    return cases


CLASSES = {
    "truncated": _truncated, "bitflip": _bitflipped, "wrong_ext": _wrong_extensions,
    "empty": _empty, "non_image": _non_images, "polyglot": _polyglots,
    "pixel_bomb": _pixel_bombs, "animated": _animated, "modes": _modes,
    "metadata": _metadata, "orientation": _orientations, "extreme_size": _extreme_sizes,
}  # fmt: skip


@functools.cache
def build() -> tuple[Case, ...]:
    cases = tuple(case for make in CLASSES.values() for case in make())
    names = Counter(c.name for c in cases)
    duplicates = [n for n, k in names.items() if k > 1]
    assert not duplicates, duplicates
    return cases


def write(folder: Path) -> dict[str, Case]:
    """The corpus as files in ``folder``; file name -> case."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for case in build():
        (folder / case.name).write_bytes(case.data)
        out[case.name] = case
    return out


def normal_image() -> bytes:
    """The ordinary picture every test sends after the hostile ones."""
    return (SAMPLES / "astronaut.jpg").read_bytes()

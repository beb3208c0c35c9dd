"""Videos and animations made by the tests themselves with PyAV and Pillow: the sample face
(samples/astronaut.jpg, public domain) moving over a grey background, two of them, none."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from .conftest import SAMPLES

Frames = Callable[[int, int], npt.NDArray[np.uint8]]  # (index, count) → H x W x 3


def _face(side: int) -> Image.Image:
    """The astronaut's head and shoulders, ``side`` px square (the face is ~half of it)."""
    image = Image.open(SAMPLES / "astronaut.jpg").convert("RGB")
    return image.crop((125, 22, 325, 222)).resize((side, side))


def moving_face(width: int = 320, height: int = 240, side: int = 150) -> Frames:
    """The astronaut sliding left to right across the frame (face ~73 px wide)."""
    face = _face(side)

    def frame(i: int, n: int) -> npt.NDArray[np.uint8]:
        canvas = Image.new("RGB", (width, height), (110, 110, 110))
        x = round((width - side) * i / max(n - 1, 1))
        canvas.paste(face, (x, (height - side) // 2))
        return np.asarray(canvas)

    return frame


def two_faces(width: int = 400, height: int = 240, side: int = 150) -> Frames:
    """Two astronauts, one still on the left, one mirrored on the right drifting down."""
    face = _face(side)
    mirrored = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def frame(i: int, n: int) -> npt.NDArray[np.uint8]:
        canvas = Image.new("RGB", (width, height), (110, 110, 110))
        canvas.paste(face, (10, 20))
        canvas.paste(mirrored, (width - side - 10, 10 + round(20 * i / max(n - 1, 1))))
        return np.asarray(canvas)

    return frame


def scene_cut(width: int = 320, height: int = 240, side: int = 150, at: float = 0.55) -> Frames:
    """Two shots: the astronaut on grey, then (from ``at`` of the clip) her mirror image, a
    "second person", at the same place on a blue background."""
    face = _face(side)
    other = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def frame(i: int, n: int) -> npt.NDArray[np.uint8]:
        second = i >= round(at * n)
        canvas = Image.new("RGB", (width, height), (30, 60, 170) if second else (110, 110, 110))
        canvas.paste(other if second else face, ((width - side) // 2, (height - side) // 2))
        return np.asarray(canvas)

    return frame


def no_face(width: int = 320, height: int = 240) -> Frames:
    """A moving colour gradient: no face anywhere."""
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]

    def frame(i: int, n: int) -> npt.NDArray[np.uint8]:
        shift = 255 * i / max(n, 1)
        base = (xs + shift) % 256 * np.ones((height, 1, 3), np.float32)
        base[..., 1] = 255 - base[..., 1]
        return base.astype(np.uint8)

    return frame


def _frames(make: Frames, n: int) -> Iterator[npt.NDArray[np.uint8]]:
    for i in range(n):
        yield make(i, n)


def encode_video(
    make: Frames,
    *,
    seconds: float = 2.0,
    fps: int = 10,
    container: str = "mp4",
    codec: str = "libx264",
    faststart: bool = False,
) -> bytes:
    """A clip of ``seconds`` at ``fps`` in ``container`` (mp4/H.264, webm/VP9, ...)."""
    n = max(1, round(seconds * fps))
    first = make(0, n)
    height, width = first.shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        # A real file: faststart moves the index to the front in a second pass over it.
        path = Path(tmp) / f"clip.{container}"
        _write(path, make, n, width, height, fps, container, codec, faststart)
        return path.read_bytes()


def _write(
    path: Path, make: Frames, n: int, width: int, height: int, fps: int, container: str,
    codec: str, faststart: bool,
) -> None:  # fmt: skip
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format=container, options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        elif codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for rgb in _frames(make, n):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def encode_animation(make: Frames, *, frames: int = 8, fmt: str = "GIF", ms: int = 100) -> bytes:
    """An animated GIF or WebP of ``frames`` frames, ``ms`` each."""
    images = [Image.fromarray(rgb) for rgb in _frames(make, frames)]
    buf = io.BytesIO()
    images[0].save(
        buf, format=fmt, save_all=True, append_images=images[1:], duration=ms, loop=0
    )
    return buf.getvalue()


class _Pipe(io.RawIOBase):
    """A write-only, unseekable sink: the muxer cannot go back to write the duration."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += bytes(b)
        return len(b)


def encode_streamed_webm(make: Frames, *, seconds: float = 3.0, fps: int = 10) -> bytes:
    """A WebM/VP9 written as a live stream would be: no duration in its header."""
    n = round(seconds * fps)
    height, width = make(0, n).shape[:2]
    sink = _Pipe()
    with av.open(sink, mode="w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for rgb in _frames(make, n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return bytes(sink.data)

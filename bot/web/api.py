"""The HTTP adapter's words: a request's image as an :class:`~bot.core.ImageRef`, and the one
place that turns a check's :class:`~bot.core.Reply` into an HTTP answer.

The upload is read *inside* the check (as the ``fetch`` of the image), so it runs under the same
admission slot, size limit and timeout as a chat download; a declared ``Content-Length`` over
the limit is refused before a byte of the body is read.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web
from PIL import Image

from bot.core import DownloadFailed, ImageRef
from bot.core.replies import CAVEAT, Problem, Refusal, Verdict, VideoVerdict

# Problem → HTTP status. 400: the request itself is wrong; 413: over a size limit; 415: not an
# image we can read; 422: an image without a face we can judge; 429: the client's rate limit;
# 503: busy, shutting down, or the remote detector server unreachable (each with Retry-After;
# 503 rather than 502 because the client's move is the same: try again later); 500: our fault.
STATUS: dict[Problem, int] = {
    Problem.NO_FACE: 422,
    Problem.FACES_TOO_SMALL: 422,
    Problem.BUSY: 503,
    Problem.CLOSED: 503,
    Problem.UNAVAILABLE: 503,
    Problem.RATE_LIMITED: 429,
    Problem.TOO_LARGE: 413,
    Problem.NOT_IMAGE: 415,
    Problem.UNSUPPORTED_MEDIA: 415,
    Problem.UNREADABLE: 415,
    Problem.DOWNLOAD_FAILED: 400,
    Problem.URL_REFUSED: 400,
    Problem.INTERNAL: 500,
}
BUSY_RETRY_AFTER_S = 2
CLOSED_RETRY_AFTER_S = 30
UNAVAILABLE_RETRY_AFTER_S = 30
CHUNK = 64 * 1024


class ApiError(Exception):
    """A request refused before it reaches the check (malformed, unauthorised)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


NO_FILE = ApiError(
    400, "no_file",
    "No image in the request. Send it as the multipart field 'file' or as the request body.",
)  # fmt: skip


def error_json(status: int, code: str, message: str, headers: dict[str, str] | None = None
               ) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def refusal_response(refusal: Refusal) -> web.Response:
    """The HTTP answer for a check without a verdict."""
    headers: dict[str, str] = {}
    if refusal.problem == Problem.BUSY:
        headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    elif refusal.problem == Problem.CLOSED:
        headers["Retry-After"] = str(CLOSED_RETRY_AFTER_S)
    elif refusal.problem == Problem.UNAVAILABLE:
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    elif refusal.problem == Problem.RATE_LIMITED and refusal.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after_s)))
    return error_json(STATUS[refusal.problem], refusal.problem.value, refusal.message, headers)


def verdict_json(verdict: Verdict, file_name: str | None) -> dict[str, Any]:
    """The same object as ``deepfake-bot check --json`` (``path`` is the uploaded file's name),
    plus the model, image size, timings and the verdict in words. A video's is the video
    object (``"kind": "video"``, ``tracks``), with the same words."""
    words = {"label": verdict.band.label, "headline": verdict.headline}
    if isinstance(verdict, VideoVerdict):
        assert verdict.video is not None, "video_reply always keeps the video"
        return {"path": file_name, **verdict.video.to_dict(), "error": None, **words,
                "caveat": verdict.caveat}  # fmt: skip
    analysis = verdict.analysis
    assert analysis is not None, "verdict_reply always keeps the analysis"
    full = analysis.to_dict()
    return {
        "path": file_name,
        "kind": "image",
        "verdict": full["verdict"],
        "p_fake": full["p_fake"],
        "faces": full["faces"],
        "too_small": full["too_small"],
        "faces_too_small": len(analysis.too_small),
        "error": None,
        "model": full["model"],
        "width": full["width"],
        "height": full["height"],
        "timings_ms": full["timings_ms"],
        "label": verdict.band.label,
        "headline": verdict.headline,
        "caveat": CAVEAT,
    }


def to_png(jpeg: bytes) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as img:
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=False)
        return out.getvalue()


async def png_of(verdict: Verdict) -> bytes:
    if verdict.image is None:
        raise ValueError("the verdict has no annotated image")
    return await asyncio.to_thread(to_png, verdict.image)


@dataclass(frozen=True)
class Upload:
    ref: ImageRef
    file_name: str | None


def _limited_reader(read: Callable[[int], Awaitable[bytes]], limit: int
                    ) -> Callable[[], Awaitable[bytes]]:
    """``fetch`` for an upload: at most ``limit + 1`` bytes (one more than allowed is enough
    for the check to say "too large"); a broken connection is a failed download."""

    async def fetch() -> bytes:
        buf = bytearray()
        try:
            while len(buf) <= limit:
                chunk = await read(min(CHUNK, limit + 1 - len(buf)))
                if not chunk:
                    break
                buf += chunk
        except (ConnectionError, asyncio.IncompleteReadError, web.HTTPException) as exc:
            raise DownloadFailed(
                f"upload broke off: {type(exc).__name__}",
                user_message="The upload did not complete. Please try again.",
            ) from exc
        return bytes(buf)

    return fetch


async def read_upload(request: web.Request, max_bytes: int) -> Upload:
    """The image of a ``POST /v1/check``: the multipart field ``file``, or the raw body."""
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        try:
            part = await _file_part(request)
        except (ValueError, AssertionError, ConnectionError, asyncio.IncompleteReadError) as exc:
            raise ApiError(
                400, "bad_request", "The request is not valid multipart form data."
            ) from exc
        mime = part.headers.get("Content-Type")
        file_name = part.filename
        ref = ImageRef(
            fetch=_limited_reader(part.read_chunk, max_bytes),
            mime_type=mime,
            file_name=file_name,
            platform="http",
        )
        return Upload(ref, file_name)
    if request.content_length == 0 or not request.can_read_body:
        raise NO_FILE
    ref = ImageRef(
        fetch=_limited_reader(request.content.read, max_bytes),
        declared_size=request.content_length,
        mime_type=request.headers.get("Content-Type"),
        platform="http",
    )
    return Upload(ref, None)


async def _file_part(request: web.Request) -> BodyPartReader:
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            raise NO_FILE
        if isinstance(part, BodyPartReader) and part.name == "file":
            return part
        await part.release()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

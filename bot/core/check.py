"""``CheckService``: the platform-neutral path from "someone asked about this image" to a reply.

An adapter describes each image as an :class:`ImageRef` (declared size and type, and how to
fetch its bytes) and gets back a :class:`~bot.core.replies.Reply`. In order: refuse what cannot
be an image or is over a size limit *before* downloading; charge the sender's rate limit; take an
admission slot (busy at once when the bounded queue is full); download under a timeout; check
the real size; analyse. Every failure becomes a :class:`~bot.core.replies.Refusal` through
:func:`~bot.core.replies.error_reply`.

With ``CheckLimits.videos`` on, videos and animations are checked too (declared ``video/*`` or a
video file name; their own size limit), through the detector's ``analyze_media``, and answered
with a :class:`~bot.core.replies.VideoVerdict`; off, they are refused as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from bot.core.admission import Admission
from bot.core.detector_port import Detector
from bot.core.errors import (
    BotError,
    DownloadFailed,
    FileTooLarge,
    NotAnImage,
    NotSupportedMedia,
    RateLimited,
)
from bot.core.ratelimit import RateLimiter
from bot.core.replies import (
    Hint,
    Problem,
    Refusal,
    Reply,
    error_reply,
    verdict_reply,
    video_reply,
)
from detector.errors import DetectorBusy
from detector.file_types import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from detector.results import Analysis
from detector.video_results import VideoAnalysis

# (frames checked, frames sampled), as a video's frames are scored.
Progress = Callable[[int, int], None]

_log = logging.getLogger(__name__)

# Refusals that are our fault or the platform's, not the sender's: their checks are given back.
_REFUNDED = frozenset(
    {Problem.BUSY, Problem.CLOSED, Problem.UNAVAILABLE, Problem.DOWNLOAD_FAILED, Problem.INTERNAL}
)


@dataclass(frozen=True)
class ImageRef:
    """An image someone asked about, before it is downloaded.

    ``mime_type`` and ``file_name`` are what the platform declares (untrusted: the detector
    recognises formats by content); they only let obvious non-images be refused without a
    download. ``download_limit``/``platform`` describe a platform's own cap on bot downloads
    (Telegram's 20 MB), so the refusal can say whose limit it is."""

    fetch: Callable[[], Awaitable[bytes]]
    declared_size: int | None = None
    mime_type: str | None = None
    file_name: str | None = None
    compressed: bool = False
    download_limit: int | None = None
    platform: str | None = None


@dataclass(frozen=True)
class CheckLimits:
    max_image_bytes: int = 25 * 1024 * 1024
    max_faces: int = 8
    download_timeout_s: float = 60.0
    # A detector call (queue, decode, faces, network) that takes longer is answered "busy";
    # the caller's wait is cancelled and the request dropped from the batch queue.
    analysis_timeout_s: float = 120.0
    videos: bool = False  # check videos and animations (else refuse them as unsupported)
    max_video_bytes: int = 20 * 1024 * 1024


def is_video(mime_type: str | None, file_name: str | None) -> bool:
    """Declared (untrusted) as a video: a ``video/*`` type or a video file name."""
    mime = (mime_type or "").split(";")[0].strip().lower()
    suffix = PurePosixPath(file_name or "").suffix.lower()
    return mime.startswith("video/") or (
        mime in {"", "application/octet-stream"} and suffix in VIDEO_SUFFIXES
    )


def kind_of(
    mime_type: str | None, file_name: str | None, *, videos: bool = False
) -> type[BotError] | None:
    """``None`` when the declared type may be an image (or, with ``videos``, a video), else
    the refusal to raise."""
    mime = (mime_type or "").split(";")[0].strip().lower()
    if mime.startswith("image/"):
        return None
    if is_video(mime_type, file_name):
        return None if videos else NotSupportedMedia
    suffix = PurePosixPath(file_name or "").suffix.lower()
    if mime in {"", "application/octet-stream"} and (not file_name or suffix in IMAGE_SUFFIXES):
        return None  # undeclared: let the content decide
    return NotAnImage


class CheckService:
    """Limits, rate limits and the detector behind one ``check`` call. Shared by all adapters."""

    def __init__(
        self,
        detector: Detector,
        *,
        limits: CheckLimits,
        admission: Admission,
        rate_limiter: RateLimiter,
    ) -> None:
        self.detector = detector
        self.limits = limits
        self.admission = admission
        self.rate_limiter = rate_limiter

    @property
    def model_name(self) -> str:
        return self.detector.model_name

    def precheck(self, ref: ImageRef) -> None:
        """Raise the refusal for an image that must not be downloaded at all."""
        refusal = kind_of(ref.mime_type, ref.file_name, videos=self.limits.videos)
        if refusal is not None:
            raise refusal(f"declared type {ref.mime_type!r}")
        limit, platform = self._byte_limit(ref), None
        if ref.download_limit is not None and ref.download_limit < limit:
            limit, platform = ref.download_limit, ref.platform
        if ref.declared_size is not None and ref.declared_size > limit:
            raise FileTooLarge(ref.declared_size, limit, platform_limit=platform)

    def _byte_limit(self, ref: ImageRef) -> int:
        if self.limits.videos and is_video(ref.mime_type, ref.file_name):
            return self.limits.max_video_bytes
        return self.limits.max_image_bytes

    async def check(
        self, sender: str, ref: ImageRef, *, on_progress: Progress | None = None
    ) -> Reply:
        """Check one image (or video) for ``sender`` (a platform-qualified id, used for rate
        limiting); ``on_progress`` hears of a video's frames as they are checked."""
        return (await self.check_many(sender, [ref], on_progress=on_progress))[0]

    async def check_many(
        self, sender: str, refs: Sequence[ImageRef], *, on_progress: Progress | None = None
    ) -> list[Reply]:
        """Check several images sent together (an album): one rate-limit charge for all of
        them, analysed concurrently within the admission bounds, replies in input order."""
        replies: list[Reply | None] = [None] * len(refs)
        todo: list[int] = []
        for i, ref in enumerate(refs):
            try:
                self.precheck(ref)
            except Exception as exc:
                replies[i] = error_reply(exc)
            else:
                todo.append(i)
        if todo:
            try:
                await self.rate_limiter.acquire(sender, cost=len(todo))
            except RateLimited as exc:
                refusal = error_reply(exc)
                for i in todo:
                    replies[i] = refusal
                todo = []
        results = await asyncio.gather(*(self._run(refs[i], on_progress) for i in todo))
        refunds = 0
        for i, reply in zip(todo, results, strict=True):
            replies[i] = reply
            if isinstance(reply, Refusal) and reply.problem in _REFUNDED:
                refunds += 1
        if refunds:
            await self.rate_limiter.refund(sender, refunds)
        assert all(r is not None for r in replies)
        return [r for r in replies if r is not None]

    async def _run(self, ref: ImageRef, on_progress: Progress | None = None) -> Reply:
        try:
            async with self.admission.slot():
                t0 = time.perf_counter()
                data = await self._download(ref)
                t1 = time.perf_counter()
                result = await self._analyze(data, on_progress)
        except Exception as exc:
            return error_reply(exc)
        hints = frozenset({Hint.COMPRESSED}) if ref.compressed else frozenset()
        if isinstance(result, VideoAnalysis):
            _log.info(
                "checked a video: %s, P(fake) %.3f, %d track(s) over %d frames, "
                "download %.0f ms, analysis %.0f ms",
                result.verdict.value,
                result.p_fake,
                len(result.tracks),
                result.frames_sampled,
                (t1 - t0) * 1000,
                (time.perf_counter() - t1) * 1000,
            )
            return video_reply(result, hints=hints)
        analysis = result
        _log.info(
            "checked an image: %s, P(fake) %.3f, %d face(s), download %.0f ms, analysis %.0f ms",
            analysis.verdict.value,
            analysis.p_fake,
            len(analysis.faces),
            (t1 - t0) * 1000,
            (time.perf_counter() - t1) * 1000,
        )
        return verdict_reply(analysis, hints=hints)

    async def _analyze(
        self, data: bytes, on_progress: Progress | None
    ) -> Analysis | VideoAnalysis:
        try:
            async with asyncio.timeout(self.limits.analysis_timeout_s):
                if self.limits.videos:
                    return await self.detector.analyze_media(
                        data, annotate=True, on_progress=on_progress
                    )
                return await self.detector.analyze(data, annotate=True)
        except TimeoutError as exc:
            _log.warning(
                "analysis took more than %.0f s; answered busy", self.limits.analysis_timeout_s
            )
            raise DetectorBusy(
                f"analysis took more than {self.limits.analysis_timeout_s:.0f} s"
            ) from exc

    async def _download(self, ref: ImageRef) -> bytes:
        try:
            async with asyncio.timeout(self.limits.download_timeout_s):
                data = await ref.fetch()
        except TimeoutError as exc:
            raise DownloadFailed(
                f"download took more than {self.limits.download_timeout_s:.0f} s"
            ) from exc
        limit = self._byte_limit(ref)  # undeclared media: the image limit; decoders hold theirs
        if len(data) > limit:
            raise FileTooLarge(len(data), limit)
        return data

    def stop_intake(self) -> None:
        """Refuse new checks (they get the "shutting down" answer); admitted ones carry on."""
        self.admission.close()

    async def wait_idle(self) -> None:
        await self.admission.wait_idle()

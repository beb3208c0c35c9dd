"""The async front of the detector: ``await service.analyze(data)``.

Owns its own bounded executors (never the loop's default one): a small pool for decoding and
face finding, and one model thread that runs the network (torch spreads each forward pass over
its intra-op threads). Face crops from concurrent requests are micro-batched into one forward
pass (``max_batch`` crops, waiting at most ``max_wait_ms`` for company). Admission is bounded:
past ``max_pending`` requests in flight, ``analyze`` raises :class:`DetectorBusy` at once
instead of letting memory grow. ``close`` stops intake, finishes in-flight work and joins the
threads.

Videos (``analyze_video``, or ``analyze_media`` which tells them from images by content) are
decoded and their faces found on the same small pool; a video counts as ``video_weight``
requests against ``max_pending``, and its crops join the shared batches one chunk of at most
``max_batch`` at a time, so an image check queued behind a video waits for one batch, not for the
whole clip.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detector import memory
from detector.errors import DetectorBusy, DetectorClosed
from detector.idle import IdleTracker
from detector.pipeline import Pipeline, Prepared
from detector.results import Analysis
from detector.video import FrameFaces, VideoPipeline, sniff_video
from detector.video_results import VideoAnalysis, VideoLimits

# Told (frames checked, frames sampled) as a video's frames are scored; called on the loop.
Progress = Callable[[int, int], None]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceOptions:
    max_pending: int = 64
    max_batch: int = 16
    max_wait_ms: float = 8.0
    prep_workers: int = 2
    # Hand freed heap memory back to the OS after a batch when this many seconds have passed
    # since the last time (None: never); see detector.memory. It runs on the model thread,
    # after the batch's replies. Under steady load that is once a second, a few ms of work.
    trim_interval_s: float | None = 1.0
    video_limits: VideoLimits = field(default_factory=VideoLimits)
    # How many requests one video counts as against max_pending (capped at max_pending).
    video_weight: int = 4


@dataclass
class ServiceStats:
    """Counters for logs and metrics."""

    analysed: int = 0
    failed: int = 0
    rejected_busy: int = 0
    batches: int = 0
    crops: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    videos: int = 0


@dataclass
class _Job:
    inputs: npt.NDArray[np.uint8]
    future: asyncio.Future[npt.NDArray[np.float64]]
    enqueued: float


_STOP = object()


class DetectorService:
    """Async, bounded, batching front of a :class:`Pipeline`. Create inside a running loop."""

    def __init__(self, pipeline: Pipeline, options: ServiceOptions | None = None) -> None:
        self.pipeline = pipeline
        self.options = options or ServiceOptions()
        if self.options.max_batch < 1 or self.options.max_pending < 1:
            raise ValueError("max_batch and max_pending must be >= 1")
        self.stats = ServiceStats()
        self.video = VideoPipeline(pipeline, self.options.video_limits)
        self._prep_pool = ThreadPoolExecutor(
            max_workers=self.options.prep_workers, thread_name_prefix="detector-prep"
        )
        self._model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector-model")
        self._queue: asyncio.Queue[_Job | object] = asyncio.Queue()
        self._inflight = IdleTracker()
        self._closing = False
        self._closed = False
        self._batcher: asyncio.Task[None] | None = None
        self._last_trim: float | None = None  # loop time; None: not yet (first batch starts it)

    @property
    def pending(self) -> int:
        """Requests admitted and not yet answered."""
        return self._inflight.count

    @property
    def model_name(self) -> str:
        return self.pipeline.model_name

    @property
    def accepting(self) -> bool:
        return not self._closing

    async def __aenter__(self) -> DetectorService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_batcher(self) -> None:
        if self._batcher is None:
            self._batcher = asyncio.get_running_loop().create_task(
                self._batch_loop(), name="detector-batcher"
            )

    async def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis:
        """Analyse one image (with ``annotate``, also render the annotated JPEG).

        Raises the detector's typed errors (``ImageError``, ``NoFaceFound``, ``DetectorBusy``,
        ``DetectorClosed``); never returns a made-up score."""
        if self._closing:
            raise DetectorClosed("service is closing")
        if self._inflight.count >= self.options.max_pending:
            self.stats.rejected_busy += 1
            raise DetectorBusy(f"{self._inflight.count} requests in flight")
        self._ensure_batcher()
        with self._inflight.track():
            return await self._analyze(data, annotate)

    async def _analyze(self, data: bytes, annotate: bool) -> Analysis:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            # In a copy of the caller's context: log lines from the worker carry its request id.
            ctx = contextvars.copy_context()
            prepared: Prepared = await loop.run_in_executor(
                self._prep_pool, ctx.run, self.pipeline.prepare, data
            )
            t1 = time.perf_counter()
            job = _Job(prepared.inputs, loop.create_future(), t1)
            await self._queue.put(job)
            p_fake = await job.future
            timings = {
                **prepared.timings_ms,
                "prep_wait_and_run": (t1 - t0) * 1000.0,
                "queue_and_model": (time.perf_counter() - t1) * 1000.0,
                "total": (time.perf_counter() - t0) * 1000.0,
            }
            if annotate:
                result = await loop.run_in_executor(
                    self._prep_pool,
                    ctx.run,
                    functools.partial(
                        self.pipeline.finish, prepared, p_fake, timings, annotate=True
                    ),
                )
            else:
                result = self.pipeline.finish(prepared, p_fake, timings)
            self.stats.analysed += 1
            return result
        except BaseException:
            self.stats.failed += 1
            raise

    async def analyze_media(
        self, data: bytes, *, annotate: bool = False, on_progress: Progress | None = None
    ) -> Analysis | VideoAnalysis:
        """An image, or a video/animation with several frames (recognised by content)."""
        if sniff_video(data[:64]) is None and not data.startswith((b"GIF8", b"RIFF")):
            return await self.analyze(data, annotate=annotate)
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._prep_pool, sniff_video, data) is None:
            return await self.analyze(data, annotate=annotate)
        return await self.analyze_video(data, annotate=annotate, on_progress=on_progress)

    async def analyze_video(
        self, data: bytes, *, annotate: bool = False, on_progress: Progress | None = None
    ) -> VideoAnalysis:
        """Analyse a video or animation face track by face track (with ``annotate``, also the
        contact sheet). Raises ``VideoError`` subclasses, ``NoFaceInVideo``, ``DetectorBusy``
        and ``DetectorClosed``; never returns a made-up score."""
        if self._closing:
            raise DetectorClosed("service is closing")
        weight = max(1, min(self.options.video_weight, self.options.max_pending))
        if self._inflight.count + weight > self.options.max_pending:
            self.stats.rejected_busy += 1
            raise DetectorBusy(f"{self._inflight.count} requests in flight, a video needs {weight}")
        self._ensure_batcher()
        with contextlib.ExitStack() as stack:
            for _ in range(weight):
                stack.enter_context(self._inflight.track())
            try:
                result = await self._analyze_video(data, annotate, on_progress)
            except BaseException:
                self.stats.failed += 1
                raise
            self.stats.videos += 1
            return result

    async def _analyze_video(
        self, data: bytes, annotate: bool, on_progress: Progress | None
    ) -> VideoAnalysis:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        video = await loop.run_in_executor(
            self._prep_pool, contextvars.copy_context().run, self.video.decode, data
        )
        t1 = time.perf_counter()
        total = len(video.frames)
        found: list[FrameFaces] = []
        scores: list[npt.NDArray[np.float64]] = []
        faces_ms = model_ms = 0.0
        # Faces of the next group of frames are found while this group's crops are scored.
        group = max(4, self.options.prep_workers)
        starts = list(range(0, total, group))

        async def find(start: int) -> tuple[list[FrameFaces], float]:
            tf = time.perf_counter()
            frames = await asyncio.gather(
                *(
                    # A context per call: one context cannot be entered by two threads at once.
                    loop.run_in_executor(
                        self._prep_pool, contextvars.copy_context().run, self.video.faces, video, i
                    )
                    for i in range(start, min(start + group, total))
                )
            )
            return list(frames), (time.perf_counter() - tf) * 1000.0

        ahead: asyncio.Task[tuple[list[FrameFaces], float]] | None = loop.create_task(find(0))
        try:
            for n, _ in enumerate(starts):
                assert ahead is not None
                batch, ms = await ahead
                faces_ms += ms
                ahead = loop.create_task(find(starts[n + 1])) if n + 1 < len(starts) else None
                tm = time.perf_counter()
                merged = await self._score_in_chunks(loop, [f.inputs for f in batch])
                model_ms += (time.perf_counter() - tm) * 1000.0
                found += batch
                scores += merged
                if on_progress is not None:
                    on_progress(len(found), total)
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead
        timings = {
            **video.timings_ms,
            "decode_wait_and_run": (t1 - t0) * 1000.0,
            "faces": faces_ms,
            "queue_and_model": model_ms,
        }
        result: VideoAnalysis = await loop.run_in_executor(
            self._prep_pool,
            contextvars.copy_context().run,
            functools.partial(self.video.finish, video, found, scores, timings, annotate=annotate),
        )
        timings["total"] = (time.perf_counter() - t0) * 1000.0
        return result

    async def _score_in_chunks(
        self, loop: asyncio.AbstractEventLoop, parts: list[npt.NDArray[np.uint8]]
    ) -> list[npt.NDArray[np.float64]]:
        """Score several frames' crops through the shared batches, one chunk of at most
        ``max_batch`` crops in the queue at a time; one score array per part."""
        sizes = [len(p) for p in parts]
        if not sum(sizes):
            return [np.zeros(0) for _ in parts]
        inputs = np.concatenate([p for p in parts if len(p)])
        out = []
        size = self.options.max_batch
        for i in range(0, len(inputs), size):
            job = _Job(inputs[i : i + size], loop.create_future(), time.perf_counter())
            await self._queue.put(job)
            out.append(await job.future)
        flat = np.concatenate(out)
        bounds = np.cumsum([0, *sizes])
        return [flat[bounds[k] : bounds[k + 1]] for k in range(len(parts))]

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Job | None = None  # a job that did not fit the previous batch
        stopping = False
        while not stopping or carry is not None:
            if carry is not None:
                first: _Job | object = carry
                carry = None
            else:
                first = await self._queue.get()
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            batch = [first]
            n = len(first.inputs)
            deadline = loop.time() + self.options.max_wait_ms / 1000.0
            # Wait for company only while other admitted requests may still arrive.
            while n < self.options.max_batch and not stopping:
                if self._queue.empty() and self._inflight.count <= len(batch):
                    break
                timeout = deadline - loop.time()
                if timeout <= 0 and self._queue.empty():
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), max(timeout, 0.0))
                except TimeoutError:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                assert isinstance(nxt, _Job)
                if n + len(nxt.inputs) > self.options.max_batch:
                    carry = nxt  # keep requests whole: it leads the next batch
                    break
                batch.append(nxt)
                n += len(nxt.inputs)
            await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        live = [job for job in batch if not job.future.done()]  # skip cancelled requests
        if not live:
            return
        inputs = np.concatenate([job.inputs for job in live])
        self.stats.batches += 1
        self.stats.crops += len(inputs)
        self.stats.batch_sizes[len(inputs)] += 1
        try:
            scores = await loop.run_in_executor(self._model_pool, self._score, inputs)
        except Exception as exc:  # delivered to every waiting request, logged by their owners
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        offset = 0
        for job in live:
            k = len(job.inputs)
            if not job.future.done():
                job.future.set_result(scores[offset : offset + k])
            offset += k
        await self._maybe_trim(loop)

    async def _maybe_trim(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = self.options.trim_interval_s
        if interval is None:
            return
        now = loop.time()
        if self._last_trim is None:
            self._last_trim = now
        if now - self._last_trim >= interval:  # after the replies: nobody waits on it
            self._last_trim = now
            await loop.run_in_executor(self._model_pool, memory.release_free_memory)

    def _score(self, inputs: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        size = self.options.max_batch
        if len(inputs) <= size:
            return self.pipeline.score(inputs)
        return np.concatenate(
            [self.pipeline.score(inputs[i : i + size]) for i in range(0, len(inputs), size)]
        )

    async def close(self, grace_s: float = 30.0) -> None:
        """Stop intake, let in-flight requests finish (up to ``grace_s``), join the threads."""
        if self._closed:
            return
        self._closing = True
        try:
            await asyncio.wait_for(self._inflight.wait_idle(), grace_s)
        except TimeoutError:
            _log.warning("closing with %d requests still in flight", self._inflight.count)
        if self._batcher is not None:
            await self._queue.put(_STOP)
            try:
                await asyncio.wait_for(self._batcher, grace_s)
            except TimeoutError:
                self._batcher.cancel()
        self._closed = True
        await asyncio.to_thread(self._shutdown_pools)
        _log.info(
            "detector service closed: %d analysed, %d failed, %d busy, %d batches",
            self.stats.analysed,
            self.stats.failed,
            self.stats.rejected_busy,
            self.stats.batches,
        )

    def _shutdown_pools(self) -> None:
        self._prep_pool.shutdown(wait=True, cancel_futures=True)
        self._model_pool.shutdown(wait=True, cancel_futures=True)

"""The async front of the detector: ``await service.analyze(data)``.

Owns its own bounded executors (never the loop's default one): a small pool for decoding and
face finding, and one model thread that runs the network (torch spreads each forward pass over
its intra-op threads). Face crops from concurrent requests are micro-batched into one forward
pass (``max_batch`` crops, waiting at most ``max_wait_ms`` for company). Admission is bounded:
past ``max_pending`` requests in flight, ``analyze`` raises :class:`DetectorBusy` at once
instead of letting memory grow. ``close`` stops intake, finishes in-flight work and joins the
threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detector import memory
from detector.errors import DetectorBusy, DetectorClosed
from detector.idle import IdleTracker
from detector.pipeline import Pipeline, Prepared
from detector.results import Analysis

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


@dataclass
class ServiceStats:
    """Counters for logs and metrics."""

    analysed: int = 0
    failed: int = 0
    rejected_busy: int = 0
    batches: int = 0
    crops: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)


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

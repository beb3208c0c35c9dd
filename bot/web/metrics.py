"""Prometheus metrics for every check, whatever the platform (Telegram, Discord, HTTP), served at
``GET /metrics``.

:class:`MeteredCheckService` is the one shared :class:`~bot.core.CheckService` with a meter on
it: it counts each check by platform (the sender's prefix: ``telegram:…``, ``discord:…``,
``http:…``) and outcome, times the download, and reads the detector's own timings off each
verdict. The queue depth is read from the admission bounds, the batch sizes from the detector's
counters (a callable the composition root passes in), at scrape time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.core import (
    Admission,
    CheckLimits,
    CheckService,
    ImageRef,
    Progress,
    RateLimiter,
    Reply,
)
from bot.core.detector_port import Detector
from bot.core.replies import Problem, Refusal, Verdict
from bot.logs import request_context, request_id

PLATFORMS = ("telegram", "discord", "http")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
P_FAKE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def platform_of(sender: str) -> str:
    head = sender.split(":", 1)[0]
    return head if head in PLATFORMS else "other"


class _BatchSizes(Collector):
    """The detector's batch-size counts (size → batches) as a histogram, read at scrape time."""

    def __init__(self, counts: Callable[[], Mapping[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        counts = dict(self._counts())
        buckets = []
        for bound in BATCH_BUCKETS:
            buckets.append((str(float(bound)), sum(n for s, n in counts.items() if s <= bound)))
        buckets.append(("+Inf", sum(counts.values())))
        family = HistogramMetricFamily(
            "deepfake_bot_batch_size", "Face crops per forward pass of the model"
        )
        family.add_metric([], buckets, sum_value=float(sum(s * n for s, n in counts.items())))
        yield family


class Metrics:
    """The service's metrics, in a registry of their own (one per service, none global)."""

    def __init__(
        self,
        *,
        model: Mapping[str, str] | None = None,
        batch_sizes: Callable[[], Mapping[int, int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.checks = Counter(
            "deepfake_bot_checks", "Checks answered, by platform and outcome "
            "(verdict, or the reason there is none)", ["platform", "outcome"], registry=r,
        )  # fmt: skip
        self.verdicts = Counter(
            "deepfake_bot_verdicts", "Image verdicts, by platform and band",
            ["platform", "verdict"], registry=r,
        )  # fmt: skip
        self.faces = Counter(
            "deepfake_bot_faces_scored", "Faces scored by the model", ["platform"], registry=r
        )
        self.p_fake = Histogram(
            "deepfake_bot_face_p_fake", "P(fake) of each scored face", buckets=P_FAKE_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "deepfake_bot_latency_seconds", "Time per check stage: download (or upload), "
            "decode_faces (decode and face finding), model (queue and forward pass), total",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.busy = Counter(
            "deepfake_bot_busy_refusals", "Checks refused because the detector was busy",
            ["platform"], registry=r,
        )  # fmt: skip
        self.running = Gauge("deepfake_bot_checks_running", "Checks running now", registry=r)
        self.waiting = Gauge(
            "deepfake_bot_queue_depth", "Checks waiting for a slot", registry=r
        )
        self.model = Info("deepfake_bot_model", "The model that answers", registry=r)
        if model:
            self.model.info(dict(model))
        if batch_sizes is not None:
            r.register(_BatchSizes(batch_sizes))

    def watch_admission(self, admission: Admission) -> None:
        self.running.set_function(lambda: admission.running)
        self.waiting.set_function(lambda: admission.waiting)

    def record(self, platform: str, reply: Reply, download_s: float | None, total_s: float) -> None:
        if isinstance(reply, Refusal):
            self.checks.labels(platform, reply.problem.value).inc()
            if reply.problem == Problem.BUSY:
                self.busy.labels(platform).inc()
            return
        self.checks.labels(platform, "verdict").inc()
        self.verdicts.labels(platform, reply.band.value).inc()
        self.faces.labels(platform).inc(reply.faces)
        analysis = reply.analysis
        if analysis is not None:
            for face in analysis.faces:
                self.p_fake.observe(face.p_fake)
            t = analysis.timings_ms
            prep = sum(t.get(k, 0.0) for k in ("decode", "faces", "crop"))
            self.latency.labels("decode_faces").observe(prep / 1000.0)
            if "queue_and_model" in t:
                self.latency.labels("model").observe(t["queue_and_model"] / 1000.0)
        if download_s is not None:
            self.latency.labels("download").observe(download_s)
        self.latency.labels("total").observe(total_s)


class MeteredCheckService(CheckService):
    """The shared check service, recording every check in ``metrics`` and giving each check a
    request id for the logs (kept when the caller, the HTTP API, already set one)."""

    def __init__(
        self,
        detector: Detector,
        *,
        limits: CheckLimits,
        admission: Admission,
        rate_limiter: RateLimiter,
        metrics: Metrics,
    ) -> None:
        super().__init__(detector, limits=limits, admission=admission, rate_limiter=rate_limiter)
        self.metrics = metrics
        metrics.watch_admission(admission)

    async def check_many(
        self, sender: str, refs: Sequence[ImageRef], *, on_progress: Progress | None = None
    ) -> list[Reply]:
        platform = platform_of(sender)
        downloads: dict[int, float] = {}

        def timed(i: int, ref: ImageRef) -> ImageRef:
            async def fetch() -> bytes:
                t0 = time.perf_counter()
                data = await ref.fetch()
                downloads[i] = time.perf_counter() - t0
                return data

            return dataclasses.replace(ref, fetch=fetch)

        with request_context(request_id.get()):
            t0 = time.perf_counter()
            replies = await super().check_many(
                sender, [timed(i, ref) for i, ref in enumerate(refs)], on_progress=on_progress
            )
            total = time.perf_counter() - t0
        for i, reply in enumerate(replies):
            self.metrics.record(
                platform, reply, downloads.get(i) if isinstance(reply, Verdict) else None, total
            )
        return replies

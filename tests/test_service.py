"""DetectorService: micro-batching across requests, busy, errors, cancellation, clean close."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from detector.config import ModelConfig
from detector.errors import CorruptImage, DetectorBusy, DetectorClosed, NoFaceFound
from detector.faces import Box
from detector.pipeline import Pipeline, Prepared
from detector.service import DetectorService, ServiceOptions


class StubPipeline(Pipeline):
    """A pipeline whose image is b"<faces>:<value>" and whose network scores a crop as
    value/255, so every request can check it got its own scores back."""

    def __init__(self) -> None:
        self.classifier = SimpleNamespace(config=ModelConfig(name="stub"))  # type: ignore[assignment]
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.prep_threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False

    def prepare(self, data: bytes) -> Prepared:
        self.prep_threads.add(threading.current_thread().name)
        if data == b"corrupt":
            raise CorruptImage("stub")
        k, value = (int(x) for x in data.split(b":"))
        if k == 0:
            raise NoFaceFound("stub")
        boxes = tuple(Box(i, i, i + 10, i + 10) for i in range(k))
        inputs = np.full((k, 4, 4, 3), value, dtype=np.uint8)
        rgb = np.zeros((20, 20, 3), np.uint8)
        return Prepared(20, 20, boxes, boxes, inputs, rgb, {})

    def score(self, inputs: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(10)
        self.batches.append(len(inputs))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model exploded")
        return inputs.reshape(len(inputs), -1).mean(axis=1) / 255.0


async def test_single_request_gets_its_scores() -> None:
    stub = StubPipeline()
    async with DetectorService(stub) as service:
        a = await service.analyze(b"2:51")
    assert [f.p_fake for f in a.faces] == [pytest.approx(0.2), pytest.approx(0.2)]
    assert stub.batches == [2]
    # Model work ran on the service's own model thread, never the loop's default executor.
    assert stub.threads == {"detector-model_0"}
    assert all(t.startswith("detector-prep") for t in stub.prep_threads)


async def test_concurrent_requests_are_batched_and_demultiplexed() -> None:
    stub = StubPipeline()
    stub.gate.clear()  # hold the first forward pass so the others queue up behind it
    async with DetectorService(stub, ServiceOptions(max_batch=8, max_wait_ms=50)) as service:
        first = asyncio.create_task(service.analyze(b"1:0"))
        await asyncio.to_thread(stub.entered.wait, 5)
        others = [asyncio.create_task(service.analyze(f"{1 + i % 2}:{10 * i}".encode()))
                  for i in range(1, 7)]
        while service._queue.qsize() < 6:  # all six prepared and waiting
            await asyncio.sleep(0.005)
        stub.gate.set()
        results = await asyncio.gather(first, *others)
    assert stub.batches[0] == 1
    assert sum(stub.batches) == 1 + sum(1 + i % 2 for i in range(1, 7))
    assert max(stub.batches[1:]) > 1, stub.batches  # the queued requests shared forward passes
    assert len(stub.batches) < 7
    for i, analysis in enumerate(results):
        assert len(analysis.faces) == (1 if i == 0 else 1 + i % 2)
        assert all(f.p_fake == pytest.approx(10 * i / 255) for f in analysis.faces)
    assert service.stats.analysed == 7


async def test_batches_respect_max_batch() -> None:
    stub = StubPipeline()
    stub.gate.clear()
    async with DetectorService(stub, ServiceOptions(max_batch=4, max_wait_ms=50)) as service:
        first = asyncio.create_task(service.analyze(b"1:1"))
        await asyncio.to_thread(stub.entered.wait, 5)
        rest = [asyncio.create_task(service.analyze(b"3:2")) for _ in range(4)]
        while service._queue.qsize() < 4:
            await asyncio.sleep(0.005)
        stub.gate.set()
        await asyncio.gather(first, *rest)
    # 3+3 would exceed 4, so the 3-crop requests run one per pass (a request is never split
    # across passes unless it alone exceeds max_batch).
    assert stub.batches == [1, 3, 3, 3, 3]


async def test_request_larger_than_max_batch_is_chunked() -> None:
    stub = StubPipeline()
    async with DetectorService(stub, ServiceOptions(max_batch=4)) as service:
        a = await service.analyze(b"10:255")
    assert len(a.faces) == 10 and all(f.p_fake == pytest.approx(1.0) for f in a.faces)
    assert stub.batches == [4, 4, 2]


async def test_busy_is_immediate_when_full() -> None:
    stub = StubPipeline()
    stub.gate.clear()
    service = DetectorService(stub, ServiceOptions(max_pending=2))
    held = [asyncio.create_task(service.analyze(b"1:1")) for _ in range(2)]
    await asyncio.to_thread(stub.entered.wait, 5)
    with pytest.raises(DetectorBusy) as info:
        await asyncio.wait_for(service.analyze(b"1:1"), 0.5)  # no waiting for a slot
    assert "busy" in info.value.user_message
    assert service.stats.rejected_busy == 1
    stub.gate.set()
    await asyncio.gather(*held)
    assert (await service.analyze(b"1:1")).faces  # capacity is back
    await service.close()


async def test_errors_reach_the_caller_and_service_keeps_going() -> None:
    stub = StubPipeline()
    async with DetectorService(stub) as service:
        with pytest.raises(CorruptImage):
            await service.analyze(b"corrupt")
        with pytest.raises(NoFaceFound):
            await service.analyze(b"0:0")
        stub.fail_next = True
        with pytest.raises(RuntimeError, match="model exploded"):
            await service.analyze(b"1:1")
        assert (await service.analyze(b"1:255")).p_fake == pytest.approx(1.0)
        assert service.pending == 0


async def test_cancelled_request_does_not_break_the_batcher() -> None:
    stub = StubPipeline()
    stub.gate.clear()
    async with DetectorService(stub, ServiceOptions(max_wait_ms=20)) as service:
        first = asyncio.create_task(service.analyze(b"1:1"))
        await asyncio.to_thread(stub.entered.wait, 5)
        doomed = asyncio.create_task(service.analyze(b"1:2"))
        while service._queue.qsize() < 1:
            await asyncio.sleep(0.005)
        doomed.cancel()
        stub.gate.set()
        assert (await first).faces
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert (await service.analyze(b"1:3")).faces
        assert service.pending == 0


async def test_close_finishes_in_flight_and_refuses_new_work() -> None:
    stub = StubPipeline()
    stub.gate.clear()
    service = DetectorService(stub)
    in_flight = [asyncio.create_task(service.analyze(b"1:100")) for _ in range(3)]
    await asyncio.to_thread(stub.entered.wait, 5)
    closing = asyncio.create_task(service.close())
    await asyncio.sleep(0.05)
    with pytest.raises(DetectorClosed):
        await service.analyze(b"1:1")
    assert not closing.done()  # waits for the in-flight requests
    stub.gate.set()
    results = await asyncio.gather(*in_flight)
    await closing
    assert all(r.p_fake == pytest.approx(100 / 255) for r in results)
    assert service._model_pool._shutdown and service._prep_pool._shutdown
    assert not any(t.name.startswith("detector-") for t in threading.enumerate())
    await service.close()  # idempotent


@pytest.mark.parametrize(("interval", "expected"), [(0.0, 7), (3600.0, 0), (None, 0)])
async def test_freed_memory_is_handed_back_at_most_once_per_interval_on_the_model_thread(
    monkeypatch: pytest.MonkeyPatch, interval: float | None, expected: int
) -> None:
    from detector import memory

    trims: list[str] = []
    monkeypatch.setattr(
        memory, "release_free_memory", lambda: trims.append(threading.current_thread().name)
    )
    options = ServiceOptions(trim_interval_s=interval)
    async with DetectorService(StubPipeline(), options) as service:
        for i in range(7):  # one at a time: seven batches
            await service.analyze(f"1:{i}".encode())
        assert service.stats.batches == 7
    assert trims == ["detector-model_0"] * expected


def test_release_free_memory_runs_on_glibc() -> None:
    import platform

    from detector.memory import release_free_memory

    ran = release_free_memory()
    assert ran is (platform.libc_ver()[0] == "glibc")

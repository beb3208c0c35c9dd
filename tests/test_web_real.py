"""``POST /v1/check`` with the real detector service and the tiny generated checkpoint: the API
states exactly what the model computes for those bytes (no scores hard-coded), finds several
faces, refuses what has no face or is no image, and the request id follows the check into the
detector's own log lines (its worker threads included)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.core import ModelCard
from bot.logs import RequestIdFilter
from bot.main import build_pipeline
from detector.errors import NoFaceFound
from detector.pipeline import Pipeline
from detector.service import DetectorService

from .conftest import encode
from .face_scenes import scene_with
from .standins.web_harness import WebRun, running_web, web_settings


@pytest.fixture()
def pipeline(tiny_checkpoint: Path) -> Pipeline:
    settings = web_settings(deepfake_bot_weights=tiny_checkpoint, detector_precision="fp32",
                            detector_threads=2)  # fmt: skip
    return build_pipeline(settings)


@pytest.fixture()
async def run(pipeline: Pipeline) -> AsyncIterator[WebRun]:
    detector = DetectorService(pipeline)
    card = ModelCard.from_config(pipeline.classifier.config)
    async with running_web(
        detector, card=card, batch_sizes=lambda: detector.stats.batch_sizes
    ) as running:
        yield running


async def _check(run: WebRun, data: bytes, **headers: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.post(
        f"{run.url}/v1/check", data=data, headers={"Content-Type": "image/jpeg", **headers}
    ) as r:
        return r.status, await r.json()


async def test_the_api_states_what_the_model_computes(
    run: WebRun, pipeline: Pipeline, astronaut_jpeg: bytes
) -> None:
    expected = pipeline.analyze(astronaut_jpeg).to_dict()
    status, body = await _check(run, astronaut_jpeg)
    assert status == 200
    for key in ("verdict", "p_fake", "faces", "too_small", "width", "height", "model"):
        assert body[key] == expected[key], key
    assert len(body["faces"]) == 1  # type: ignore[arg-type]
    timings = body["timings_ms"]
    assert isinstance(timings, dict) and {"decode", "faces", "total"} <= set(timings)
    async with aiohttp.ClientSession() as http, http.get(f"{run.url}/metrics") as r:
        families = {f.name: f for f in text_string_to_metric_families(await r.text())}
    model = [s for s in families["deepfake_bot_latency_seconds"].samples
             if s.name.endswith("_count") and s.labels["stage"] == "model"]  # fmt: skip
    assert [s.value for s in model] == [1]
    batches = [s for s in families["deepfake_bot_batch_size"].samples if s.name.endswith("_count")]
    assert [s.value for s in batches] == [1]


async def test_several_faces_no_face_and_not_an_image(
    run: WebRun, pipeline: Pipeline, coffee_jpeg: bytes
) -> None:
    scene, _ = scene_with([(160, (80, 200), 0.0), (160, (760, 220), 0.0)])
    two = encode(scene)
    expected = pipeline.analyze(two).to_dict()
    status, body = await _check(run, two)
    assert status == 200 and len(expected["faces"]) == 2
    assert body["faces"] == expected["faces"]
    status, body = await _check(run, coffee_jpeg)
    assert status == 422
    assert body == {"error": {"code": "no_face", "message": NoFaceFound.user_message}}
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    status, body = await _check(run, noise)
    assert status == 415
    assert body["error"]["code"] == "unreadable"  # type: ignore[index]


async def test_the_request_id_reaches_the_detectors_log_lines(
    run: WebRun, caplog: pytest.LogCaptureFixture, astronaut_jpeg: bytes
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO, logger="bot")
    caplog.set_level(logging.DEBUG, logger="detector")  # last: it also sets the handler's level
    status, _ = await _check(run, b"GIF89a broken", **{"X-Request-Id": "rid-broken-1"})
    assert status == 415
    status, _ = await _check(run, astronaut_jpeg, **{"X-Request-Id": "rid-astronaut-2"})
    assert status == 200
    detector_lines = [r for r in caplog.records if r.name.startswith("detector.images")]
    assert detector_lines, "the detector logged nothing about the broken image"
    assert {getattr(r, "request_id", None) for r in detector_lines} == {"rid-broken-1"}
    checked = [r for r in caplog.records if r.getMessage().startswith("checked an image")]
    assert [getattr(r, "request_id", None) for r in checked] == ["rid-astronaut-2"]
    api = [r for r in caplog.records if r.name == "bot.web.app"
           and "POST /v1/check" in r.getMessage()]  # fmt: skip
    assert [getattr(r, "request_id", None) for r in api] == ["rid-broken-1", "rid-astronaut-2"]

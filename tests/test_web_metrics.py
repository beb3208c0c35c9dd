"""``GET /metrics`` after known traffic, parsed with ``prometheus_client.parser``: checks by
platform and outcome (HTTP through the API, Telegram and Discord through the same metered check
service), faces, the P(fake) histogram, latencies, busy refusals, queue depth, batch sizes and
the model's info."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.core import ImageRef
from detector.errors import NoFaceFound

from .standins.web_harness import FakeDetector, analysis, jpeg, running_web, web_settings

IMAGE = jpeg(120, 90)
NO_FACE = jpeg(100, 100, (1, 2, 3))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_known_traffic_from_every_platform() -> None:
    detector = FakeDetector(
        lambda data: NoFaceFound("none") if data == NO_FACE else analysis(0.2, 0.95)
    )
    batches = Counter({1: 3, 2: 1, 16: 2})
    # Videos off: the clip below is refused as unsupported media (test_video_* check videos).
    settings = web_settings(max_concurrent_checks=1, check_queue_size=0, video_enabled=False)
    async with (
        running_web(detector, settings, batch_sizes=lambda: batches) as run,
        aiohttp.ClientSession() as http,
    ):
        for data in (IMAGE, IMAGE, NO_FACE):
            async with http.post(f"{run.url}/v1/check", data=data,
                                 headers={"Content-Type": "image/jpeg"}) as r:
                await r.read()
        # Chat checks go through the same shared service.
        async def fetch() -> bytes:
            return IMAGE

        await run.service.checks.check("telegram:42", ImageRef(fetch))
        await run.service.checks.check_many(
            "discord:7", [ImageRef(fetch), ImageRef(fetch, mime_type="video/mp4")]
        )
        # One check held in the detector fills the only slot: the next one is busy.
        detector.hold.clear()
        held = asyncio.create_task(run.service.checks.check("telegram:42", ImageRef(fetch)))
        while not detector.in_flight:
            await asyncio.sleep(0.01)
        async with http.post(f"{run.url}/v1/check", data=IMAGE) as r:
            assert r.status == 503
        async with http.get(f"{run.url}/metrics") as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            during = samples(await r.text())
        detector.hold.set()
        await held
        async with http.get(f"{run.url}/metrics") as r:
            after = samples(await r.text())

    def checks(platform: str, outcome: str) -> float:
        key = ("deepfake_bot_checks_total", (("outcome", outcome), ("platform", platform)))
        return after.get(key, 0.0)

    assert checks("http", "verdict") == 2
    assert checks("http", "no_face") == 1
    assert checks("http", "busy") == 1
    assert checks("telegram", "verdict") == 2
    assert checks("discord", "verdict") == 1
    assert checks("discord", "unsupported_media") == 1
    assert after[("deepfake_bot_busy_refusals_total", (("platform", "http"),))] == 1
    verdicts = after[("deepfake_bot_verdicts_total",
                      (("platform", "http"), ("verdict", "likely_manipulated")))]  # fmt: skip
    assert verdicts == 2
    faces = {p: after[("deepfake_bot_faces_scored_total", (("platform", p),))]
             for p in ("http", "telegram", "discord")}  # fmt: skip
    assert faces == {"http": 4, "telegram": 4, "discord": 2}
    # Five verdicts of two faces each: 0.2 and 0.95.
    assert after[("deepfake_bot_face_p_fake_count", ())] == 10
    assert after[("deepfake_bot_face_p_fake_bucket", (("le", "0.2"),))] == 5
    assert after[("deepfake_bot_face_p_fake_bucket", (("le", "0.9"),))] == 5
    for stage in ("download", "decode_faces", "total"):
        assert after[("deepfake_bot_latency_seconds_count", (("stage", stage),))] == 5, stage
    # While one check was held: one running, none waiting; afterwards nothing running.
    assert during[("deepfake_bot_checks_running", ())] == 1
    assert after[("deepfake_bot_checks_running", ())] == 0
    assert after[("deepfake_bot_queue_depth", ())] == 0
    # The detector's batch sizes, as a histogram.
    assert after[("deepfake_bot_batch_size_count", ())] == 6
    assert after[("deepfake_bot_batch_size_sum", ())] == 3 + 2 + 32
    assert after[("deepfake_bot_batch_size_bucket", (("le", "2.0"),))] == 4
    assert after[("deepfake_bot_batch_size_bucket", (("le", "+Inf"),))] == 6
    info = [k for k in after if k[0] == "deepfake_bot_model_info"]
    assert len(info) == 1
    assert dict(info[0][1]) == {"name": "fake detector (tests)", "input_size": "64",
                                "precision": "fp32", "weights_sha256": "0" * 64}

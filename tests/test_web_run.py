"""The real ``deepfake-bot run`` as a subprocess with no chat token at all: it serves the page and
the API alone and says so; with ``LOG_FORMAT=json`` every line it writes is a JSON object and the
check's lines carry its request id; SIGTERM in the middle of an upload still answers that
request; it exits 0; and no line of the whole run contains the API token."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from .standins.common import bot_process, free_port, run_env

pytestmark = pytest.mark.slow

TOKEN = "web-api-token-7f3a9c1e5b"


async def _until_ready(origin: str, proc: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(1200):  # a hang guard: ~120 s for the model to load on a slow machine
            assert proc.returncode is None, "the service exited while starting"
            try:
                async with http.get(f"{origin}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("never ready")


async def test_run_without_tokens_serves_the_web_and_answers_through_sigterm(
    tiny_checkpoint: Path, astronaut_jpeg: bytes, tmp_path: Path
) -> None:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = run_env(tiny_checkpoint, port, {
        "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG", "HTTP_API_TOKEN": TOKEN,
    })  # fmt: skip
    log = tmp_path / "run.log"
    auth = {"Authorization": f"Bearer {TOKEN}", "X-Request-Id": "slow-upload-1"}
    sent_sigterm = asyncio.Event()

    async with bot_process(env, tmp_path, log) as proc:
        await _until_ready(origin, proc)

        async def trickle() -> AsyncIterator[bytes]:
            step = len(astronaut_jpeg) // 20 + 1
            for i in range(0, len(astronaut_jpeg), step):
                yield astronaut_jpeg[i : i + step]
                await asyncio.sleep(0.1)
                if i >= 5 * step and not sent_sigterm.is_set():
                    proc.send_signal(signal.SIGTERM)  # the upload is a quarter in
                    sent_sigterm.set()

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{origin}/") as r:
                page = await r.text()
            async with http.post(f"{origin}/v1/check", data=astronaut_jpeg,
                                 headers={**auth, "X-Request-Id": "first-1"}) as r:
                first = r.status, await r.json()
            async with http.post(f"{origin}/v1/check", data=astronaut_jpeg) as r:
                unauthorised = r.status
            async with http.post(
                f"{origin}/v1/check", data=trickle(),
                headers={**auth, "Content-Type": "image/jpeg"},
            ) as r:
                slow = r.status, await r.json()
        rc = await asyncio.wait_for(proc.wait(), 90)

    output = log.read_text(encoding="utf-8", errors="replace")
    print(output)
    assert "never stored" in page
    assert first[0] == 200 and first[1]["faces"], first
    assert unauthorised == 401
    assert sent_sigterm.is_set()
    assert slow[0] == 200 and slow[1]["verdict"] == first[1]["verdict"], slow
    assert rc == 0
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    messages = [x["message"] for x in lines]
    assert any("serving the web page and HTTP API only" in m for m in messages)
    assert any("received SIGTERM" in m for m in messages)
    assert not [x for x in lines if x["level"] in {"ERROR", "CRITICAL"}]
    checked = [x for x in lines if x["message"].startswith("checked an image")]
    assert [x.get("request_id") for x in checked] == ["first-1", "slow-upload-1"]
    sigterm = next(i for i, m in enumerate(messages) if "received SIGTERM" in m)
    assert lines.index(checked[1]) > sigterm  # the slow check was answered after the signal
    assert TOKEN not in output

"""What the Discord and Telegram stand-ins and harnesses share: serving an aiohttp app on a free
loopback port, queued error injection and waiting on the call log (the stand-ins); settings and
an orderly started and stopped service around one adapter (the in-process harnesses); and
``deepfake-bot run`` as a subprocess (the end-to-end run tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from bot.core import CheckService
from bot.core.detector_port import Detector
from bot.runner import Frontend, Service
from bot.settings import Settings

REPO = Path(__file__).resolve().parents[2]

T = TypeVar("T")

# --- the stand-ins' server side ------------------------------------------------------------------


class LoopbackServer:
    """An aiohttp application on ``127.0.0.1``, on a port the system picks when it starts, and
    the event that tells waiting tests something changed (a call came in or was answered)."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _new_app() -> web.Application:
        return web.Application(client_max_size=64 * 1024 * 1024)  # uploads and albums

    async def _serve(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop_serving(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _next_change(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll interval
        """Until the next change, or ``timeout`` seconds at most."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def _poll(
        self,
        probe: Callable[[], T | None],
        timeout: float,  # noqa: ASYNC109 - a test helper's deadline
        failure: Callable[[], str],
        *,
        every: float | None = None,
    ) -> T:
        """What ``probe()`` finds (not None), re-probed on every change and at least ``every``
        seconds; past ``timeout`` an AssertionError saying ``failure()``."""
        deadline = time.monotonic() + timeout
        while (found := probe()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(failure())
            await self._next_change(left if every is None else min(left, every))
        return found


class _Injected(Protocol):
    times: int  # how many more calls it fails


F = TypeVar("F", bound=_Injected)


class InjectedFailures(Generic[F]):
    """Failures queued per method or route; each fails the next ``times`` calls of it."""

    def __init__(self) -> None:
        self._queues: dict[str, list[F]] = {}

    def add(self, key: str, failure: F) -> None:
        self._queues.setdefault(key, []).append(failure)

    def take(self, key: str) -> F | None:
        """The failure for this call of ``key``, if one is queued."""
        queue = self._queues.get(key)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure


# --- the in-process harnesses ----------------------------------------------------------------


def standin_settings(platform: dict[str, Any], overrides: dict[str, Any]) -> Settings:
    """Settings from ``platform`` (pointing at a stand-in) and the test's ``overrides`` alone,
    never from the environment or an ``.env`` file; generous rate limits, no HTTP server."""
    values: dict[str, Any] = {
        **platform,
        "rate_limit_per_minute": 100,
        "http_enabled": False,
        "shutdown_grace_s": 15.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_service(
    settings: Settings, frontend: Frontend, checks: CheckService, detector: Detector
) -> AsyncIterator[Service]:
    """The service around one adapter, started; stopped in order (intake, in-flight work,
    detector) on exit."""
    service = Service([frontend], checks, detector, grace_s=settings.shutdown_grace_s)
    try:  # as ``bot.runner.serve`` does: a failed start still stops what did start
        await service.start()
        yield service
    finally:
        await service.stop()


# --- ``deepfake-bot run`` as a subprocess ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The test runner's environment minus anything that could configure the service."""
    prefixes = (
        "TELEGRAM_", "DISCORD_", "DETECTOR_", "HTTP_", "MAX_", "RATE_", "CHECK_", "REDIS_",
    )  # fmt: skip
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(prefixes)}


def run_env(weights: Path, http_port: int, platform: dict[str, str]) -> dict[str, str]:
    """The whole configuration of ``deepfake-bot run``: nothing inherited that could configure
    it (``clean_env``), the checkpoint ``weights`` on fp32 with one thread, the health endpoints
    on ``127.0.0.1:http_port``, no proxy for loopback, and the ``platform`` variables."""
    return {
        **clean_env(),
        "NO_PROXY": "127.0.0.1,localhost",
        "DEEPFAKE_BOT_WEIGHTS": str(weights),
        "DETECTOR_PRECISION": "fp32",
        "DETECTOR_THREADS": "1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(http_port),
        **platform,
    }


@asynccontextmanager
async def bot_process(
    env: dict[str, str], cwd: Path, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot.main run`` with ``env`` (plus this checkout on ``PYTHONPATH``), stdout
    and stderr in ``log``; killed on exit if it is still running."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.main", "run",
            cwd=cwd, env={**env, "PYTHONPATH": str(REPO)}, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def clean_sigterm_exit(rc: int, log: Path, token: str) -> str:
    """The process's log (printed for the test report), checked for an orderly stop on SIGTERM:
    exit status 0, nothing logged at ERROR or above, and the token never written out."""
    output = log.read_text(encoding="utf-8", errors="replace")
    print(output)
    assert rc == 0, output
    assert "received SIGTERM" in output
    assert " ERROR " not in output and " CRITICAL " not in output, output
    assert token not in output
    return output

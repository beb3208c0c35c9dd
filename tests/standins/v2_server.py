"""A canned Open Inference Protocol V2 (KServe V2 REST) server for the remote detector's client
tests, per ``docs/remote-detector.md``: the five routes, both request encodings (JSON and the
binary tensor extension), scores computed by a real local :class:`~detector.model.Classifier`
(so remote and local can be compared number for number), and the ways a real server misbehaves:
output shape ``[N, 1]``, extra fields, error answers (400/404/500/503 with ``Retry-After``), slow
answers, broken metadata, and death (``kill``: the port then refuses connections).

It runs its own event loop in a background thread, so synchronous code (the client, a
``check`` subprocess) and async tests can both talk to it::

    with V2StandIn(tiny_classifier) as server:
        server.fail(503, times=1, retry_after=2)
        RemoteClassifier.connect(server.url)
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from aiohttp import web

from detector.model import Classifier

MODEL = "deepfake-xception"


@dataclass
class Failure:
    status: int
    retry_after: float | None = None
    body: dict[str, Any] | None = None


@dataclass
class Seen:
    """One infer request as the stand-in received it."""

    encoding: Literal["binary", "json"]
    shape: list[int]
    body_bytes: int
    status: int = 0


@dataclass
class V2StandIn:
    """``classifier``'s model served as ``model``. Attributes are read per request, so a test
    may change them while the server runs."""

    classifier: Classifier
    model: str = MODEL
    output_shape: Literal["flat", "column"] = "flat"  # [N] or [N, 1]
    extra_fields: bool = False  # unknown fields on every object of the answers
    delay_s: float = 0.0  # before each infer answer
    server_ready: bool = True
    model_ready: bool = True
    metadata_override: dict[str, Any] | None = None  # replaces the whole metadata answer
    scores_override: list[Any] | None = None  # answered instead of the model's scores
    infers: list[Seen] = field(default_factory=list)
    _failures: deque[Failure] = field(default_factory=deque)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    port: int = 0

    # --- control ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(
        self, status: int, *, times: int = 1, retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Answer the next ``times`` infer requests with ``status`` (and ``Retry-After``)."""
        for _ in range(times):
            self._failures.append(Failure(status, retry_after, body))

    def metadata(self) -> dict[str, Any]:
        """The metadata the contract prescribes for this model."""
        size = self.classifier.config.input_size
        return {
            "name": self.model,
            "versions": [(self.classifier.sha256 or "0" * 64)[:12]],
            "platform": "pytorch",
            "inputs": [{"name": "faces", "datatype": "UINT8", "shape": [-1, 3, size, size]}],
            "outputs": [{"name": "fake_prob", "datatype": "FP32", "shape": [-1]}],
            "parameters": {
                "deepfake_bot_config": self.classifier.config.to_json(),
                "fake_prob": "calibrated",
            },
        }

    def start(self) -> V2StandIn:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._serve())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="v2-standin", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the V2 stand-in did not start")
        return self

    def kill(self) -> None:
        """Stop serving; the port refuses connections from now on."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> V2StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # --- serving ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/v2/health/live", self._live)
        app.router.add_get("/v2/health/ready", self._ready)
        app.router.add_get("/v2/models/{name}/ready", self._model_ready)
        app.router.add_get("/v2/models/{name}", self._metadata)
        app.router.add_post("/v2/models/{name}/infer", self._infer)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still sleeping (a slow answer nobody waits for any more) end here, not in
        # a closed loop's "Task was destroyed but it is pending".
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _extra(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {**obj, "x_standin_note": {"unknown": True}} if self.extra_fields else obj

    @staticmethod
    def _error(status: int, message: str, retry_after: float | None = None) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        return web.json_response({"error": message}, status=status, headers=headers)

    def _known(self, request: web.Request) -> bool:
        return request.match_info["name"] == self.model

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def _ready(self, request: web.Request) -> web.Response:
        if not self.server_ready:
            return self._error(503, "not ready")
        return web.json_response({"ready": True})

    async def _model_ready(self, request: web.Request) -> web.Response:
        if not self._known(request):
            return self._error(404, f"unknown model {request.match_info['name']!r}")
        if not self.model_ready:
            return self._error(503, "model loading")
        return web.json_response({"name": self.model, "ready": True})

    async def _metadata(self, request: web.Request) -> web.Response:
        if not self._known(request):
            return self._error(404, f"unknown model {request.match_info['name']!r}")
        meta = self.metadata_override if self.metadata_override is not None else self.metadata()
        return web.json_response(self._extra(meta))

    async def _infer(self, request: web.Request) -> web.Response:
        body = await request.read()
        header_length = request.headers.get("Inference-Header-Content-Length")
        seen = Seen("binary" if header_length is not None else "json", [], len(body))
        self.infers.append(seen)
        response = await self._answer(request, body, header_length, seen)
        seen.status = response.status
        return response

    async def _answer(
        self, request: web.Request, body: bytes, header_length: str | None, seen: Seen
    ) -> web.Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self._failures:
            failure = self._failures.popleft()
            if failure.body is not None:
                return web.json_response(failure.body, status=failure.status)
            return self._error(failure.status, f"injected {failure.status}", failure.retry_after)
        if not self._known(request):
            return self._error(404, f"unknown model {request.match_info['name']!r}")
        try:
            faces = self._faces(body, header_length, seen)
        except (ValueError, KeyError, TypeError) as exc:
            return self._error(400, str(exc))
        crops = np.ascontiguousarray(faces.transpose(0, 2, 3, 1))
        p = await asyncio.to_thread(self.classifier.predict, crops)
        n = len(p)
        data: list[Any] = [float(v) for v in p.astype(np.float32)]
        if self.scores_override is not None:
            data = self.scores_override
        shape = [n] if self.output_shape == "flat" else [n, 1]
        head = json.loads(body[: int(header_length)]) if header_length else json.loads(body)
        output = self._extra({"name": "fake_prob", "datatype": "FP32", "shape": shape,
                              "data": data})  # fmt: skip
        answer = {"model_name": self.model, "model_version": "1", "id": head.get("id", ""),
                  "outputs": [output]}  # fmt: skip
        return web.json_response(self._extra(answer))

    def _faces(self, body: bytes, header_length: str | None, seen: Seen) -> np.ndarray:
        size = self.classifier.config.input_size
        if header_length is not None:
            n = int(header_length)
            head, raw = json.loads(body[:n]), body[n:]
        else:
            head, raw = json.loads(body), b""
        (tensor,) = head["inputs"]
        if tensor["name"] != "faces" or tensor["datatype"] != "UINT8":
            raise ValueError(f"expected faces UINT8, got {tensor['name']} {tensor['datatype']}")
        shape = [int(d) for d in tensor["shape"]]
        seen.shape = shape
        if len(shape) != 4 or shape[1:] != [3, size, size]:
            raise ValueError(f"shape {shape}, expected [N, 3, {size}, {size}]")
        count = int(np.prod(shape))
        if header_length is not None:
            if int(tensor["parameters"]["binary_data_size"]) != len(raw) or len(raw) != count:
                raise ValueError(f"binary_data_size does not match {len(raw)} bytes")
            return np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        values = np.asarray(tensor["data"], dtype=np.int64)
        if values.size != count or values.min() < 0 or values.max() > 255:
            raise ValueError("data does not fit the shape as UINT8")
        return values.astype(np.uint8).reshape(shape)
